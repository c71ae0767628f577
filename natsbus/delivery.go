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

// delivery implements eventbus.Delivery for one JetStream message. Every
// settlement is a request to the broker that waits for its reply, so that
// an error means the broker may not have recorded it (the message then
// comes back after AckWait, as at-least-once delivery requires).
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

// Ack acknowledges the message and waits for the broker to confirm (a
// JetStream double ack).
func (d *delivery) Ack(ctx context.Context) error {
	return d.settle(ctx, "ack", ackAck, true, true)
}

// Retry naks the message with delay; the broker redelivers it once delay
// has passed. A delay of zero or less redelivers at once. The consumer's
// AckWait does not apply to the wait.
func (d *delivery) Retry(ctx context.Context, delay time.Duration) error {
	body := ackNak
	if delay > 0 {
		body = fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds())
	}
	return d.settle(ctx, "retry", body, true, false)
}

// Reject terminates the message: the broker never redelivers it.
func (d *delivery) Reject(ctx context.Context) error {
	return d.settle(ctx, "reject", ackTerm, true, true)
}

// InProgress resets the broker's AckWait timer of the message.
func (d *delivery) InProgress(ctx context.Context) error {
	return d.settle(ctx, "in-progress", ackProgress, false, false)
}

// settle sends body for a delivery not yet settled; final marks it
// settled. Once the receiver's Stop has given the delivery back, only an
// outcome, an ack or a reject, is still sent: the broker then forgets the
// event, which spares a redelivery if none has happened yet. A retry or a
// progress report would only disturb the redelivery under way, so they
// succeed without a word to the broker.
func (d *delivery) settle(ctx context.Context, verb string, body []byte, final, outcome bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settled {
		return d.fail(verb, errSettled)
	}
	if !d.returned || outcome {
		if err := d.request(ctx, verb, body); err != nil {
			return err
		}
	}
	if final {
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
