package eventbus

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Publish publishes payload as a new event with a fresh ID and the current
// time. It returns once the event is accepted: queued for every asynchronous
// subscription and handled by every Sync one. It blocks only while a
// subscription with the Block policy has a full buffer, and then returns
// ctx's error if ctx ends first (the event is then delivered to nobody).
//
// If T has a method Validate() error, Publish calls it first and returns a
// *ValidationError if it fails. After Close has begun it returns ErrClosed. A
// full Reject subscription makes it return an error wrapping ErrQueueFull.
// In all these cases no subscription receives the event. Handler failures are
// not returned (see PublishWait); they are reported as WithErrorHandler says.
func (t *Topic[T]) Publish(ctx context.Context, payload T) error {
	var ev Event[T]
	ev.Payload = payload // not a composite literal, which the compiler builds aside and copies
	return t.publish(ctx, &ev, false)
}

// PublishEvent is Publish for a complete event: a non-zero ID and Time and the
// Metadata are kept, so an event forwarded from elsewhere keeps its identity.
// A zero ID or Time is filled in. ev.Topic must be empty or the topic's name.
func (t *Topic[T]) PublishEvent(ctx context.Context, ev Event[T]) error {
	if ev.Topic != "" && ev.Topic != t.name {
		return fmt.Errorf("%w: event for %q published on %q", ErrInvalidTopic, ev.Topic, t.name)
	}
	return t.publish(ctx, &ev, false)
}

// publish is Publish and PublishEvent: the typed layer checks and stamps
// ev, then the topic's engine delivers it. Internal publishes (dead
// letters) are still accepted while Close drains the bus.
func (t *Topic[T]) publish(ctx context.Context, ev *Event[T], internal bool) error {
	if err := t.stamp(ev); err != nil {
		return err
	}
	return t.engine.publish(ctx, *ev, internal)
}

// stamp validates ev's payload and gives ev the topic's name and, if it
// has none, the time.
func (t *Topic[T]) stamp(ev *Event[T]) error {
	if err := t.invalid(&ev.Payload); err != nil {
		return err
	}
	ev.Topic = t.name
	if ev.Time.IsZero() {
		ev.Time = t.bus.cfg.clock().UTC() // before the topic's lock: the clock is the slowest step
	}
	return nil
}

// publish writes ev into the rings of the topic's asynchronous
// subscriptions and runs its Sync handlers.
func (t *memTopic[T]) publish(ctx context.Context, ev Event[T], internal bool) error {
	var anyEv Event[any]
	subs, all, n, err := t.accept(ctx, &ev, &anyEv, nil, internal)
	if err != nil {
		return err
	}
	if !hasSync(subs, all) {
		return nil
	}
	// No panic gets past publishSync to keep Close waiting: it returns the
	// logger's, to raise once the publish is finished.
	var escaped *recovered
	if subs != nil && len(subs.sync) > 0 {
		escaped = publishSync(ctx, subs.sync, &ev, n)
	}
	if all != nil && len(all.sync) > 0 {
		boxOnce(&anyEv, &ev)
		escaped = cmp.Or(escaped, publishSync(ctx, all.sync, &anyEv, n))
	}
	t.leave()
	if escaped != nil {
		panic(escaped.value)
	}
	return nil
}

func hasSync[T any](subs *subList[T], all *subList[any]) bool {
	return subs != nil && len(subs.sync) > 0 || all != nil && len(all.sync) > 0
}

// accept gives ev its ID and writes it for every asynchronous
// subscription, boxing it into anyEv if SubscribeAll ones take it. On
// success, if there are Sync subscriptions, the caller runs their handlers
// and then calls t.leave; n is the event's number on the topic.
func (t *memTopic[T]) accept(ctx context.Context, ev *Event[T], anyEv *Event[any], w *waiter, internal bool) (subs *subList[T], all *subList[any], n uint64, err error) {
	ms := ev.Time.UnixMilli()
	var stalled *time.Timer
	defer func() {
		if stalled != nil {
			stalled.Stop()
		}
	}()
	for {
		t.mu.Lock()
		if t.closed && !internal && !t.bus.reacting(ctx) {
			t.mu.Unlock()
			return nil, nil, 0, ErrClosed
		}
		if ev.ID.IsZero() {
			t.ids.NextTo((*[16]byte)(&ev.ID), ms)
		}
		subs, all = t.subs.Load(), t.bus.all.Load()
		blocker, wait, err := t.offer(subs, all, ev, anyEv, w)
		if blocker == nil && err == nil {
			t.latest, t.hasLatest = *ev, true
			t.published++
			n = t.published
			if subs.empty() && all.empty() {
				t.noSubs++
			}
			if hasSync(subs, all) {
				t.inflight.Add(1) // Close waits for the Sync handlers
			}
			t.mu.Unlock()
			return subs, all, n, nil
		}
		t.mu.Unlock()
		if err == nil {
			err = t.wait(ctx, blocker, wait, internal, &stalled)
		}
		if err != nil {
			return nil, nil, 0, err
		}
	}
}

// wait blocks until the full lane may have room, and returns nil to try
// again, or why not: ctx ended, Close began, or waiting would deadlock.
func (t *memTopic[T]) wait(ctx context.Context, blocker *lane, room <-chan struct{}, internal bool, stalled **time.Timer) error {
	if me := callerWorker(ctx); me != nil {
		me.waiting.Store(blocker)
		defer me.waiting.Store(nil)
		if err := deadlock(blocker); err != nil {
			return fmt.Errorf("eventbus: %s publishing to %s: %w", me.sub, t.name, err)
		}
	}
	if *stalled == nil {
		*stalled = time.NewTimer(t.bus.cfg.stallTimeout)
	}
	closing := t.bus.closing
	if internal || t.bus.reacting(ctx) {
		closing = nil // dead letters and handlers' reactions still go out while Close drains
	}
	for {
		select {
		case <-room:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("eventbus: publish to %s waiting for room in the buffer of %s: %w", t.name, blocker, ctx.Err())
		case <-closing:
			return ErrClosed
		case <-(*stalled).C:
			t.bus.logger.LogAttrs(ctx, slog.LevelWarn, "eventbus: publisher stalled on a full buffer",
				slog.String("topic", t.name), slog.String("subscriber", blocker.sub.name),
				slog.String("subscribed_at", blocker.sub.where), slog.Duration("waiting_for_at_least", t.bus.cfg.stallTimeout))
		}
	}
}

// boxed converts an event for SubscribeAll handlers.
func boxed[T any](ev *Event[T]) Event[any] {
	return Event[any]{ID: ev.ID, Topic: ev.Topic, Time: ev.Time, Payload: ev.Payload, Metadata: ev.Metadata}
}

// boxOnce fills anyEv from ev for SubscribeAll's Sync handlers, unless
// accept already boxed it for its asynchronous ones (a boxed event always
// has its topic set): the payload is boxed once per event.
func boxOnce[T any](anyEv *Event[any], ev *Event[T]) {
	if anyEv.Topic == "" {
		*anyEv = boxed(ev)
	}
}
