package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// publish encodes ev for the broker, which stores it and delivers it to
// every subscription, in this process or another.
func (t remoteTopic[T]) publish(ctx context.Context, ev Event[T], internal bool) error {
	t.mu.Lock()
	if t.closed && !internal && !t.bus.reacting(ctx) {
		t.mu.Unlock()
		return ErrClosed
	}
	if ev.ID.IsZero() {
		ev.ID = t.ids.Next(ev.Time.UnixMilli())
	}
	t.inflight.Add(1) // Close waits for the broker's answer
	t.mu.Unlock()
	defer t.leave()

	data, err := t.bus.cfg.codec.Marshal(ev.Payload)
	if err != nil {
		return fmt.Errorf("eventbus: encoding a %s payload: %w", t.name, err)
	}
	env := Envelope{ID: ev.ID, Topic: t.name, Time: ev.Time, Metadata: ev.Metadata, Data: data}
	if err := t.bus.cfg.transport.Publish(ctx, &env); err != nil {
		return fmt.Errorf("eventbus: publish to %s: %w", t.name, err)
	}
	t.mu.Lock()
	t.latest, t.hasLatest = ev, true
	t.published++
	t.mu.Unlock()
	return nil
}

// publishFailed is the bus's report of an event that a Transport's
// Publish accepted and its broker then did not store (an AsyncPublisher):
// counted in Stats.PublishFailed, logged, and given to the error handler
// as a *HandlerError with no Subscriber.
func (b *Bus) publishFailed(env *Envelope, err error) {
	b.failedPublishes.Add(1)
	b.logger.LogAttrs(context.Background(), slog.LevelError, "eventbus: the broker did not store a published event",
		slog.String("topic", env.Topic), slog.String("event_id", env.ID.String()), slog.Any("error", err))
	if b.cfg.errorHandler != nil {
		b.callErrorHandler(&HandlerError{Topic: env.Topic, EventID: env.ID, Err: err})
	}
}

// flushTransport waits until the broker stored, or the transport
// reported, every event published so far, on a transport that publishes
// asynchronously.
func (b *Bus) flushTransport(ctx context.Context) error {
	if ap, ok := b.cfg.transport.(AsyncPublisher); ok {
		if err := ap.Flush(ctx); err != nil {
			return fmt.Errorf("eventbus: flushing the transport's publishes: %w", err)
		}
	}
	return nil
}

// publishWait cannot wait for handlers in other processes. It answers as
// PublishWait would for what it can check, so that ErrClosed keeps its
// meaning, and publishes nothing.
func (t remoteTopic[T]) publishWait(ctx context.Context, ev Event[T]) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return fmt.Errorf("eventbus: PublishWait on %s cannot wait for handlers behind a transport: %w", t.name, errors.ErrUnsupported)
}

// decode turns an envelope of the topic back into an event.
func (t *Topic[T]) decode(env *Envelope) (Event[T], error) {
	var p T
	if err := t.bus.cfg.codec.Unmarshal(env.Data, &p); err != nil {
		return Event[T]{}, fmt.Errorf("eventbus: cannot decode the %s payload of event %s: %w", env.Topic, env.ID, err)
	}
	return Event[T]{ID: env.ID, Topic: env.Topic, Time: env.Time, Payload: p, Metadata: env.Metadata}, nil
}

// decodeAny is decode for SubscribeAll: the payload keeps its type T.
func (t *Topic[T]) decodeAny(env *Envelope) (Event[any], error) {
	ev, err := t.decode(env)
	if err != nil {
		return Event[any]{}, err
	}
	return boxed(&ev), nil
}
