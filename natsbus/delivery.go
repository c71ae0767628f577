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

	mu      sync.Mutex
	settled bool
}

func (d *delivery) Envelope() *eventbus.Envelope { return &d.env }

// Attempt is the broker's count of deliveries of this message to the
// consumer (NumDelivered).
func (d *delivery) Attempt() int { return d.attempt }

// Ack acknowledges the message with a plain publish: it returns once the
// ack is queued on the connection, and fails only if it cannot be (the
// connection is closed).
func (d *delivery) Ack(ctx context.Context) error {
	return d.settle(ctx, "ack", ackAck, true, false)
}

// Retry naks the message with delay; the broker redelivers it once delay
// has passed. A delay of zero or less redelivers at once. The consumer's
// AckWait does not apply to the wait.
func (d *delivery) Retry(ctx context.Context, delay time.Duration) error {
	body := ackNak
	if delay > 0 {
		body = fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds())
	}
	return d.settle(ctx, "retry", body, true, true)
}

// Reject terminates the message: the broker never redelivers it.
func (d *delivery) Reject(ctx context.Context) error {
	return d.settle(ctx, "reject", ackTerm, true, true)
}

// InProgress resets the broker's AckWait timer of the message, with a
// plain publish.
func (d *delivery) InProgress(ctx context.Context) error {
	return d.settle(ctx, "in-progress", ackProgress, false, false)
}

// settle sends body for a delivery not yet settled, as a request that
// waits for the broker's reply if confirm, else as a plain publish; final
// marks it settled.
func (d *delivery) settle(ctx context.Context, verb string, body []byte, final, confirm bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settled {
		return d.fail(verb, errSettled)
	}
	if confirm {
		if err := d.request(ctx, verb, body); err != nil {
			return err
		}
	} else if err := d.r.t.nc.Publish(d.reply, body); err != nil {
		return d.fail(verb, err)
	}
	if final {
		d.settled = true
		d.r.settled(ctx)
	}
	return nil
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
