package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// remoteAckWait is how long the broker waits for a handler before it
// redelivers; the keeper of a subscription tells it a handler still works
// every third of that.
const remoteAckWait = 30 * time.Second

// publishRemote is publish on a bus with a Transport: the event is encoded
// and stored by the broker, and delivered by it to every subscription, in
// this process or another.
func (t *Topic[T]) publishRemote(ctx context.Context, ev *Event[T], internal bool) error {
	if t.validate != nil {
		p := ev.Payload
		if err := t.validate(&p); err != nil {
			return &ValidationError{Topic: t.name, Err: err}
		}
	}
	ev.Topic = t.name
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	t.mu.Lock()
	if t.closed && !internal {
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
	t.latest, t.hasLatest = *ev, true
	t.published++
	t.mu.Unlock()
	return nil
}

// decode turns an envelope of the topic back into an event.
func (t *Topic[T]) decode(env *Envelope) (Event[T], error) {
	var p T
	if err := t.bus.cfg.codec.Unmarshal(env.Data, &p); err != nil {
		return Event[T]{}, fmt.Errorf("eventbus: decoding a %s payload: %w", env.Topic, err)
	}
	return Event[T]{ID: env.ID, Topic: env.Topic, Time: env.Time, Payload: p, Metadata: env.Metadata}, nil
}

func (t *Topic[T]) decodeAny(env *Envelope) (Event[any], error) {
	ev, err := t.decode(env)
	if err != nil {
		return Event[any]{}, err
	}
	return boxed(&ev), nil
}

// remoteState is the part of a subscription that lives on a Transport: a
// receiver per topic (one, or one per topic for SubscribeAll), and what the
// keeper needs to tell the broker that slow handlers still work.
type remoteState[T any] struct {
	named bool // Name was given: the consumer is durable
	group string

	mu      sync.Mutex
	recvs   []Receiver
	slots   []*inflight
	stopped bool
	stop    chan struct{} // closed when the receivers are stopped: the keeper ends
}

// inflight is the delivery a remote worker is handling, for the keeper.
type inflight struct {
	d     atomic.Pointer[Delivery]
	since atomic.Int64 // unix nanoseconds when its handler started
}

// listen starts a receiver of topic and its workers. The caller holds b.mu
// (Subscribe and SubscribeAll) so that Close cannot begin meanwhile.
func (s *subscriber[T]) listen(topic string, decode func(*Envelope) (Event[T], error)) error {
	r := s.remote
	opts := SubscribeOptions{Topic: topic, Group: r.group, Replay: s.replay, MaxInFlight: s.concurrency, AckWait: remoteAckWait}
	if r.named {
		opts.Name = s.name
	}
	recv, err := s.bus.cfg.transport.Subscribe(s.bus.handlerCtx, opts)
	if err != nil {
		return fmt.Errorf("eventbus: subscribe %s to %s: %w", s.name, topic, err)
	}
	r.mu.Lock()
	r.recvs = append(r.recvs, recv)
	r.mu.Unlock()
	for range s.concurrency {
		slot := &inflight{}
		r.mu.Lock()
		r.slots = append(r.slots, slot)
		r.mu.Unlock()
		s.running.Add(1)
		s.bus.workers.Go(func() error {
			defer s.exit(nil)
			s.runRemote(recv, decode, slot)
			return nil
		})
	}
	return nil
}

// startKeeper runs, for the life of the subscription, the goroutine that
// calls InProgress for handlers that run long, so the broker does not hand
// their events to someone else meanwhile.
func (s *subscriber[T]) startKeeper() {
	r := s.remote
	s.running.Add(1)
	s.bus.workers.Go(func() error {
		defer s.exit(nil)
		tick := time.NewTicker(remoteAckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return nil
			case now := <-tick.C:
				r.mu.Lock()
				slots := append([]*inflight(nil), r.slots...)
				r.mu.Unlock()
				for _, sl := range slots {
					if d := sl.d.Load(); d != nil && now.UnixNano()-sl.since.Load() >= int64(remoteAckWait/3) {
						_ = (*d).InProgress(s.bus.handlerCtx) // a lost one only means an early redelivery
					}
				}
			}
		}
	})
}

// stopReceivers ends the subscription's consumers; events the broker keeps
// for a durable one (Name, Group) wait for the next process.
func (s *subscriber[T]) stopReceivers() {
	r := s.remote
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	recvs := r.recvs
	close(r.stop)
	r.mu.Unlock()
	for _, recv := range recvs {
		if err := recv.Stop(context.Background()); err != nil {
			s.bus.logger.LogAttrs(context.Background(), slog.LevelWarn, "eventbus: stopping a consumer failed",
				slog.String("subscriber", s.name), slog.Any("error", err))
		}
	}
}

// runRemote is one worker of a subscription on a Transport.
func (s *subscriber[T]) runRemote(recv Receiver, decode func(*Envelope) (Event[T], error), slot *inflight) {
	ctx := s.bus.handlerCtx
	for {
		d, err := recv.Next(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return
			}
			s.bus.logger.LogAttrs(ctx, slog.LevelWarn, "eventbus: receiving failed; trying again",
				slog.String("subscriber", s.name), slog.Any("error", err))
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		s.handleRemote(ctx, d, decode, slot)
	}
}

// handleRemote delivers one message: ack after the handler returns nil; on
// failure a retry after the backoff, and after the last attempt a dead
// letter and a reject. A payload that does not decode is dead-lettered at
// once: retrying it could never succeed.
func (s *subscriber[T]) handleRemote(ctx context.Context, d Delivery, decode func(*Envelope) (Event[T], error), slot *inflight) {
	env := d.Envelope()
	attempt := d.Attempt()
	if s.gate.Load()&gateClosed != 0 {
		s.settle(ctx, d.Retry(ctx, 0), env, "retry") // unsubscribed: someone else may take it
		return
	}
	if attempt <= 1 {
		s.c.dispatched.Add(1)
	}
	ev, err := decode(env)
	if err != nil {
		he := &HandlerError{Topic: env.Topic, EventID: env.ID, Subscriber: s.name, Attempt: attempt, Err: err}
		s.bus.report(s.Subscription, he, false)
		s.deadLetterRaw(ctx, env, attempt, err)
		s.settle(ctx, d.Reject(ctx), env, "reject")
		return
	}
	slot.since.Store(time.Now().UnixNano())
	slot.d.Store(&d)
	he := s.attempt(ctx, &ev, attempt, true)
	slot.d.Store(nil)
	switch {
	case he == nil:
		s.c.delivered.Add(1)
		s.settle(ctx, d.Ack(ctx), env, "ack")
	case attempt < s.maxAttempts:
		s.c.retries.Add(1)
		var delay time.Duration
		if s.backoff != nil {
			delay = max(s.backoff(attempt), 0)
		}
		s.settle(ctx, d.Retry(ctx, delay), env, "retry")
	default:
		s.deadLetter(ctx, &ev, he)
		s.settle(ctx, d.Reject(ctx), env, "reject")
	}
}

// settle logs a failed ack, retry or reject: the broker then redelivers
// after its ack wait, which at-least-once delivery allows.
func (s *subscriber[T]) settle(ctx context.Context, err error, env *Envelope, what string) {
	if err != nil {
		s.bus.logger.LogAttrs(ctx, slog.LevelWarn, "eventbus: settling a delivery failed; the broker will redeliver it",
			slog.String("subscriber", s.name), slog.String("topic", env.Topic),
			slog.String("event_id", env.ID.String()), slog.String("settle", what), slog.Any("error", err))
	}
}

// deadLetterRaw dead-letters an envelope whose payload did not decode; the
// letter carries the raw payload.
func (s *subscriber[T]) deadLetterRaw(ctx context.Context, env *Envelope, attempt int, err error) {
	if env.Topic == DeadLetterTopic {
		return // never a dead letter of a dead letter
	}
	var payload any = env.Data
	if json.Valid(env.Data) {
		payload = json.RawMessage(env.Data)
	}
	dl := DeadLetter{
		Topic: env.Topic, EventID: env.ID, Time: env.Time, Subscriber: s.name,
		Attempts: attempt, Error: err.Error(), Payload: payload, Metadata: env.Metadata,
	}
	if err := s.bus.publishDeadLetter(s.bus.handlerCtx, dl); err != nil {
		s.bus.logger.LogAttrs(ctx, slog.LevelError, "eventbus: dead letter lost",
			slog.String("topic", env.Topic), slog.String("event_id", env.ID.String()),
			slog.String("subscriber", s.name), slog.Any("error", err))
		return
	}
	s.c.deadLettered.Add(1)
}
