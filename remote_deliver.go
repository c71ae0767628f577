package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// receive is one worker of a subscription on a Transport: it handles what
// recv delivers until recv is stopped.
func (s *remoteSub[T]) receive(recv Receiver, decode func(*Envelope) (Event[T], error), call *atomic.Pointer[remoteCall]) {
	ctx := s.bus.handlerCtx
	for {
		d, err := recv.Next(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return
			}
			// The receiver rides out what it can; pause, so that a
			// receiver that keeps failing does not spin.
			s.bus.logger.LogAttrs(ctx, slog.LevelWarn, "eventbus: receiving failed; trying again",
				slog.String("subscriber", s.name), slog.Any("error", err))
			pause := time.NewTimer(100 * time.Millisecond)
			select {
			case <-pause.C:
			case <-ctx.Done():
				pause.Stop()
				return
			}
			continue
		}
		s.handleRemote(ctx, d, decode, call)
	}
}

// handleRemote delivers one message: ack after the handler returns nil. A
// failed attempt is retried here, after its backoff, before the worker
// takes the next message (as the in-memory engine does), so that a
// subscription with Concurrency(1) keeps publish order across retries
// while the transport hands it messages from a batch; the keeper tells the
// broker meanwhile that the event is still being worked on. After the last
// attempt come a dead letter and a reject. A payload that does not decode
// is dead-lettered at once: retrying it could never succeed. Attempts start
// from the broker's count of deliveries to the consumer, so the Retry
// limit holds across processes. If Close gives up or the subscription ends
// during a backoff, the message goes back to the broker for redelivery.
func (s *remoteSub[T]) handleRemote(ctx context.Context, d Delivery, decode func(*Envelope) (Event[T], error), call *atomic.Pointer[remoteCall]) {
	// Settle even when Close has given up on the handlers: an event
	// handled is worth acknowledging.
	settleCtx := context.WithoutCancel(ctx)
	env := d.Envelope()
	attempt := d.Attempt()
	if s.gate.Load()&gateClosed != 0 {
		s.settle(ctx, d.Retry(settleCtx, 0), env, "retry") // unsubscribed: a durable consumer's next receiver takes it
		return
	}
	if attempt <= 1 {
		s.c.dispatched.Add(1)
	}
	ev, err := decode(env)
	if err != nil {
		he := &HandlerError{Topic: env.Topic, EventID: env.ID, Subscriber: s.name, Attempt: attempt, Err: err}
		s.bus.report(s.Subscription, he, false)
		s.bury(ctx, d, s.rawLetter(env, he))
		return
	}
	now := time.Now()
	call.Store(&remoteCall{d: d, start: now, nudged: now})
	defer call.Store(nil)
	for {
		he := s.attempt(ctx, &ev, attempt, true)
		switch {
		case he == nil:
			s.c.delivered.Add(1)
			s.settle(ctx, d.Ack(settleCtx), env, "ack")
			return
		case attempt >= s.maxAttempts:
			s.bury(ctx, d, s.letter(&ev, he))
			return
		}
		s.c.retries.Add(1)
		if !s.pause(ctx, attempt) {
			s.settle(ctx, d.Retry(settleCtx, 0), env, "retry")
			return
		}
		attempt++
	}
}

// bury publishes the dead letter of a delivery that failed for good, then
// rejects it. If the letter cannot be published, the delivery is retried
// instead, so that the event is not lost: its next delivery fails again
// and tries again. A dead letter itself is never dead-lettered.
func (s *remoteSub[T]) bury(ctx context.Context, d Delivery, dl *DeadLetter) {
	settleCtx := context.WithoutCancel(ctx)
	env := d.Envelope()
	if env.Topic == DeadLetterTopic {
		s.bus.logger.LogAttrs(ctx, slog.LevelError, "eventbus: dead-letter handler failed; the dead letter is not dead-lettered again",
			slog.String("subscriber", s.name), slog.String("event_id", env.ID.String()))
	} else if err := s.sendLetter(dl); err != nil {
		s.bus.logger.LogAttrs(ctx, slog.LevelWarn, "eventbus: publishing a dead letter failed; the event will be delivered again",
			slog.String("topic", env.Topic), slog.String("event_id", env.ID.String()),
			slog.String("subscriber", s.name), slog.Any("error", err))
		s.settle(ctx, d.Retry(settleCtx, letterRetry), env, "retry")
		return
	}
	s.settle(ctx, d.Reject(settleCtx), env, "reject")
}

// rawLetter is the dead letter of an envelope whose payload did not
// decode; it carries the payload as it came, as JSON if it is JSON.
func (s *remoteSub[T]) rawLetter(env *Envelope, he *HandlerError) *DeadLetter {
	var payload any = env.Data
	if json.Valid(env.Data) {
		payload = json.RawMessage(env.Data)
	}
	return &DeadLetter{
		Topic: env.Topic, EventID: env.ID, Time: env.Time, Subscriber: s.name,
		Attempts: he.Attempt, Error: he.Err.Error(), Payload: payload, Metadata: env.Metadata,
	}
}

// settle logs a failed ack, retry or reject: the broker then redelivers
// the event after its ack wait, which at-least-once delivery allows.
func (s *remoteSub[T]) settle(ctx context.Context, err error, env *Envelope, what string) {
	if err != nil {
		s.bus.logger.LogAttrs(ctx, slog.LevelWarn, "eventbus: settling a delivery failed; the broker will deliver it again",
			slog.String("subscriber", s.name), slog.String("topic", env.Topic),
			slog.String("event_id", env.ID.String()), slog.String("settle", what), slog.Any("error", err))
	}
}

// letterRetry is how long the broker keeps an event whose dead letter could
// not be published before offering it again, so that the letter is not lost.
const letterRetry = time.Second
