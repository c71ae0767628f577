package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quantumtrader/eventbus"
)

// The bodies of JetStream's acknowledgement protocol.
var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackTerm     = []byte("+TERM")
	ackProgress = []byte("+WPI")
)

// errSettled is returned when a delivery is settled a second time.
var errSettled = errors.New("natsbus: delivery already settled")

// delivery implements eventbus.Delivery for one JetStream message. Ack and
// InProgress are plain publishes on the connection, as nats bench's
// consumers send them: the common path costs no round trip, and an ack the
// broker never got only means the event comes back after AckWait, which
// at-least-once delivery allows. Retry and Reject, which change what the
// broker does next and are rare, wait for the broker's reply, so that an
// error from them means the broker may not have recorded them.
type delivery struct {
	r       *receiver
	reply   string // the message's ack subject
	env     eventbus.Envelope
	attempt int

	mu       sync.Mutex
	settled  bool
	returned bool // given back to the broker by the receiver's Stop
}

func (d *delivery) Envelope() *eventbus.Envelope { return &d.env }

// Attempt is the broker's count of deliveries of this message to the
// consumer (NumDelivered).
func (d *delivery) Attempt() int { return d.attempt }

// Ack acknowledges the message with a plain publish: it returns once the
// ack is queued on the connection, and fails only if it cannot be (the
// connection is closed).
func (d *delivery) Ack(ctx context.Context) error {
	return d.settle(ctx, "ack", ackAck, settleFinal|settleOutcome)
}

// Retry naks the message with delay; the broker redelivers it once delay
// has passed. A delay of zero or less redelivers at once. The consumer's
// AckWait does not apply to the wait.
func (d *delivery) Retry(ctx context.Context, delay time.Duration) error {
	body := ackNak
	if delay > 0 {
		body = fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds())
	}
	return d.settle(ctx, "retry", body, settleFinal|settleConfirm)
}

// Reject terminates the message: the broker never redelivers it.
func (d *delivery) Reject(ctx context.Context) error {
	return d.settle(ctx, "reject", ackTerm, settleFinal|settleConfirm|settleOutcome)
}

// InProgress resets the broker's AckWait timer of the message, with a
// plain publish.
func (d *delivery) InProgress(ctx context.Context) error {
	return d.settle(ctx, "in-progress", ackProgress, 0)
}

// How settle sends a body: settleFinal settles the delivery;
// settleConfirm waits for the broker's reply (else a plain publish);
// settleOutcome marks an ack or a reject, which is still sent after the
// receiver's Stop gave the delivery back.
const (
	settleFinal = 1 << iota
	settleConfirm
	settleOutcome
)

// settle sends body for a delivery not yet settled, as how says. Once the
// receiver's Stop has given the delivery back, only an outcome, an ack or
// a reject, is still sent: the broker then forgets the event, which spares
// a redelivery if none has happened yet. A retry or a progress report
// would only disturb the redelivery under way, so they succeed without a
// word to the broker.
func (d *delivery) settle(ctx context.Context, verb string, body []byte, how int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settled {
		return d.fail(verb, errSettled)
	}
	switch {
	case d.returned && how&settleOutcome == 0:
	case how&settleConfirm != 0:
		if err := d.request(ctx, verb, body); err != nil {
			return err
		}
	default:
		if err := d.r.t.nc.Publish(d.reply, body); err != nil {
			return d.fail(verb, err)
		}
	}
	if how&settleFinal != 0 {
		d.settled = true
		d.r.settled(ctx, d)
	}
	return nil
}

// giveBack naks a delivery that the receiver's Stop found handed out and
// not settled: the broker offers the event again at once, as attempt + 1,
// rather than after AckWait. Its holder may go on handling it, and the
// event may then be handled twice, once by each, as at-least-once
// delivery allows; a holder that is gone costs nothing more. The nak is a
// plain publish, as for messages never handed out: if it is lost, AckWait
// brings the event back. A delivery whose holder is settling it, or
// reporting progress, at this very moment is left to it.
func (d *delivery) giveBack() {
	if !d.mu.TryLock() {
		return
	}
	defer d.mu.Unlock()
	if d.settled || d.returned {
		return
	}
	d.returned = true
	_ = d.r.t.nc.Publish(d.reply, ackNak)
}

func (d *delivery) request(ctx context.Context, verb string, body []byte) error {
	ctx, cancel := d.r.t.bound(ctx)
	defer cancel()
	if _, err := d.r.t.nc.RequestWithContext(ctx, d.reply, body); err != nil {
		return d.fail(verb, err)
	}
	return nil
}

func (d *delivery) fail(verb string, err error) error {
	return fmt.Errorf("natsbus: %s event %s of %s (attempt %d): %w", verb, d.env.ID, d.r.subject, d.attempt, err)
}
