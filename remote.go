package eventbus

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the typed layer over a Transport: a topic encodes what it
// publishes into an Envelope, and a subscription pulls Deliveries from a
// Receiver per topic, decodes them, runs the handler and settles each one
// with the broker. The in-memory engine (deliver.go) is not involved.

// letterRetry is how long the broker keeps an event whose dead letter could
// not be published before offering it again, so that the letter is not lost.
const letterRetry = time.Second

// publishRemote is publish on a bus with a Transport: the event is encoded
// and stored by the broker, which delivers it to every subscription, in
// this process or another.
func (t *Topic[T]) publishRemote(ctx context.Context, ev *Event[T], internal bool) error {
	if err := t.invalid(&ev.Payload); err != nil {
		return err
	}
	ev.Topic = t.name
	if ev.Time.IsZero() {
		ev.Time = t.bus.cfg.clock().UTC()
	}
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
	t.latest, t.hasLatest = *ev, true
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

// publishWaitRemote is PublishWait on a bus with a Transport, which cannot
// wait for handlers in other processes. It answers as PublishWait would
// for what it can check, so that ErrClosed and a *ValidationError keep
// their meaning, and publishes nothing.
func (t *Topic[T]) publishWaitRemote(payload T) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := t.invalid(&payload); err != nil {
		return err
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

// listenNew gives every SubscribeAll subscription on the transport a
// receiver of a topic being created, or none if any fails. The caller holds
// b.mu.
func (b *Bus) listenNew(topic string, decode func(*Envelope) (Event[any], error)) error {
	if b.closed.Load() {
		return nil // Close is stopping the subscriptions
	}
	recvs := make([]Receiver, 0, len(b.remoteAll))
	for _, s := range b.remoteAll {
		recv, err := s.open(topic)
		if err != nil {
			for _, r := range recvs {
				_ = r.Stop(context.Background()) // never handed out: nothing to lose
			}
			return err
		}
		recvs = append(recvs, recv)
	}
	for i, s := range b.remoteAll {
		s.serve(recvs[i], decode)
	}
	return nil
}

// remoteState is the part of a subscription that lives on a Transport: a
// receiver per topic (one, or one per topic for SubscribeAll), and what its
// keeper watches.
type remoteState struct {
	opts SubscribeOptions // what every receiver asks for; Topic is set per receiver

	mu      sync.Mutex
	recvs   []Receiver
	calls   []*atomic.Pointer[remoteCall] // one per worker: the handler call under way
	stopped bool
	stop    chan struct{} // closed with stopped set: the keeper ends
}

// remoteCall is a handler call under way, for the keeper. The worker sets d
// and start; the other fields are the keeper's alone.
type remoteCall struct {
	d        Delivery
	start    time.Time
	nudged   time.Time // when the broker last heard the handler still works
	reported bool      // logged as stalled
}

func newRemoteState(b *Bus, cfg subConfig) *remoteState {
	opts := SubscribeOptions{Group: cfg.group, Replay: cfg.replay, MaxInFlight: cfg.concurrency, AckWait: cmp.Or(cfg.ackWait, b.cfg.ackWait)}
	if cfg.group == "" {
		opts.Name = cfg.name // empty: an ephemeral consumer
	}
	return &remoteState{opts: opts, stop: make(chan struct{})}
}

// open starts a consumer of topic for the subscription.
func (s *subscriber[T]) open(topic string) (Receiver, error) {
	opts := s.remote.opts
	opts.Topic = topic
	recv, err := s.bus.cfg.transport.Subscribe(s.bus.handlerCtx, opts)
	if err != nil {
		return nil, fmt.Errorf("eventbus: %s: receiving %s: %w", s.Subscription, topic, err)
	}
	return recv, nil
}

// serve starts the workers that handle what recv receives. If the
// subscription has stopped meanwhile, it stops recv instead.
func (s *subscriber[T]) serve(recv Receiver, decode func(*Envelope) (Event[T], error)) {
	r := s.remote
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		_ = recv.Stop(context.Background()) // never handed out: nothing to lose
		return
	}
	r.recvs = append(r.recvs, recv)
	for range s.concurrency {
		call := new(atomic.Pointer[remoteCall])
		r.calls = append(r.calls, call)
		// The keeper holds running above zero until stopped is set, so
		// this never revives a subscription whose done is closed.
		s.running.Add(1)
		s.bus.workers.Go(func() error {
			defer s.exit(nil)
			s.receive(recv, decode, call)
			return nil
		})
	}
}

// listen opens a receiver of topic and serves it.
func (s *subscriber[T]) listen(topic string, decode func(*Envelope) (Event[T], error)) error {
	recv, err := s.open(topic)
	if err != nil {
		return err
	}
	s.serve(recv, decode)
	return nil
}

// startKeeper runs, for the life of the subscription, the goroutine that
// watches its handler calls: it tells the broker that a call running for a
// third of the ack wait still works, so the event is not handed to another
// consumer meanwhile, and logs a call that runs past the stall timeout,
// once, as the stall watcher does for the in-memory engine.
func (s *subscriber[T]) startKeeper() {
	r, ackWait, stallAfter := s.remote, s.remote.opts.AckWait, s.bus.cfg.stallTimeout
	nudgeAfter := ackWait / 3
	s.running.Add(1)
	s.bus.workers.Go(func() error {
		defer s.exit(nil)
		// Ticking twice per nudge, the broker hears from a running handler
		// at least every half ack wait.
		tick := time.NewTicker(max(min(nudgeAfter/2, stallAfter/4), time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return nil
			case now := <-tick.C:
				r.mu.Lock()
				calls := slices.Clone(r.calls)
				r.mu.Unlock()
				for _, slot := range calls {
					c := slot.Load()
					if c == nil {
						continue
					}
					if now.Sub(c.nudged) >= nudgeAfter {
						c.nudged = now
						// A lost one only means an early redelivery, which
						// at-least-once delivery allows.
						_ = c.d.InProgress(s.bus.handlerCtx)
					}
					if !c.reported && now.Sub(c.start) >= stallAfter {
						c.reported = true
						s.bus.logger.LogAttrs(context.Background(), slog.LevelWarn, "eventbus: handler stalled",
							slog.String("subscriber", s.name), slog.String("topic", c.d.Envelope().Topic),
							slog.String("subscribed_at", s.where), slog.Duration("running_for_at_least", now.Sub(c.start)))
					}
				}
			}
		}
	})
}

// drainRemote waits until the broker has nothing left for the
// subscription's consumers that it held when drainRemote began: their
// events are handled (or dead-lettered). Receivers that cannot tell are
// not waited for.
func (s *subscriber[T]) drainRemote(ctx context.Context) error {
	r := s.remote
	r.mu.Lock()
	recvs, stopped := slices.Clone(r.recvs), r.stopped
	r.mu.Unlock()
	if stopped {
		return nil
	}
	for _, recv := range recvs {
		d, ok := recv.(Drainer)
		if !ok {
			continue
		}
		if err := d.Drain(ctx); err != nil && !errors.Is(err, ErrClosed) {
			return fmt.Errorf("eventbus: draining %s: %w", s.Subscription, err)
		}
	}
	return nil
}

// stopReceivers ends the subscription's consumers; the events a durable
// one (Name, Group) has not handled wait on the broker for its next
// receiver.
func (s *subscriber[T]) stopReceivers() error {
	r := s.remote
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	recvs := r.recvs
	close(r.stop)
	r.mu.Unlock()
	var errs []error
	for _, recv := range recvs {
		if err := recv.Stop(context.Background()); err != nil {
			s.bus.logger.LogAttrs(context.Background(), slog.LevelWarn, "eventbus: stopping a consumer failed",
				slog.String("subscriber", s.name), slog.Any("error", err))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// receive is one worker of a subscription on a Transport: it handles what
// recv delivers until recv is stopped.
func (s *subscriber[T]) receive(recv Receiver, decode func(*Envelope) (Event[T], error), call *atomic.Pointer[remoteCall]) {
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
func (s *subscriber[T]) handleRemote(ctx context.Context, d Delivery, decode func(*Envelope) (Event[T], error), call *atomic.Pointer[remoteCall]) {
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
func (s *subscriber[T]) bury(ctx context.Context, d Delivery, dl *DeadLetter) {
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
func (s *subscriber[T]) rawLetter(env *Envelope, he *HandlerError) *DeadLetter {
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
func (s *subscriber[T]) settle(ctx context.Context, err error, env *Envelope, what string) {
	if err != nil {
		s.bus.logger.LogAttrs(ctx, slog.LevelWarn, "eventbus: settling a delivery failed; the broker will deliver it again",
			slog.String("subscriber", s.name), slog.String("topic", env.Topic),
			slog.String("event_id", env.ID.String()), slog.String("settle", what), slog.Any("error", err))
	}
}
