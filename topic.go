package eventbus

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/quantumtrader/eventbus/internal/clock"
	"github.com/quantumtrader/eventbus/internal/idgen"
	"github.com/quantumtrader/eventbus/internal/queue"
)

// Topic is a named stream of events whose payloads have type T. Get one with
// NewTopic or MustTopic; its methods are safe for concurrent use.
type Topic[T any] struct {
	topicCore
	ids      *idgen.Source
	validate func(*T) error // nil unless T has a Validate() error method
	subs     atomic.Pointer[subList[T]]

	// mu serialises the queueing of events, so every subscription sees the
	// events of concurrent publishers in the same order, a Reject is all or
	// nothing, and Replay takes the latest event atomically with the
	// subscription. Handlers never run under it.
	mu        sync.Mutex
	latest    Event[T]
	hasLatest bool
}

// topicCore is the part of a topic the Bus handles without knowing T.
type topicCore struct {
	bus       *Bus
	name      string
	typ       reflect.Type
	inflight  atomic.Int64 // publishes under way, for Close
	published atomic.Uint64
	noSubs    atomic.Uint64
	retired   retiredStats // what its unsubscribed subscriptions counted
}

// topicEntry is a registered topic of any payload type.
type topicEntry interface {
	core() *topicCore
	stats() TopicStats
	discardAll() // Close past its deadline: give up every queued event
	lock()
	unlock()
	latestLocked() (Event[any], bool)
}

func (c *topicCore) core() *topicCore { return c }

// NewTopic returns the topic of bus b with the given name and payload type T,
// creating it on first use. Asking again with the same name and T returns the
// same *Topic; a different T is an error wrapping ErrTopicType. The name is
// one or more dot-separated tokens of letters, digits, '_' and '-', at most
// 255 bytes (it doubles as a NATS subject); anything else wraps ErrInvalidTopic.
func NewTopic[T any](b *Bus, name string) (*Topic[T], error) {
	if err := checkTopicName(name); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.topics[name]; ok {
		if t, ok := e.(*Topic[T]); ok {
			return t, nil
		}
		return nil, fmt.Errorf("%w: %q carries %v, not %v", ErrTopicType, name, e.core().typ, reflect.TypeFor[T]())
	}
	t := &Topic[T]{
		topicCore: topicCore{bus: b, name: name, typ: reflect.TypeFor[T]()},
		ids:       b.ids.Derive(uint64(len(b.order))),
		validate:  validatorOf[T](),
	}
	b.topics[name] = t
	b.order = append(b.order, t)
	return t, nil
}

// MustTopic is like NewTopic but panics where NewTopic returns an error. It
// suits package-level topic accessors whose name and type are constants.
func MustTopic[T any](b *Bus, name string) *Topic[T] {
	t, err := NewTopic[T](b, name)
	if err != nil {
		panic(err)
	}
	return t
}

// Name returns the topic's name.
func (t *Topic[T]) Name() string { return t.name }

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
	ev := Event[T]{Payload: payload}
	return t.publishEvent(ctx, &ev)
}

// PublishEvent is Publish for a complete event: a non-zero ID and Time and the
// Metadata are kept, so an event forwarded from elsewhere keeps its identity.
// A zero ID or Time is filled in. ev.Topic must be empty or the topic's name.
func (t *Topic[T]) PublishEvent(ctx context.Context, ev Event[T]) error {
	if ev.Topic != "" && ev.Topic != t.name {
		return fmt.Errorf("%w: event for %q published on %q", ErrInvalidTopic, ev.Topic, t.name)
	}
	return t.publishEvent(ctx, &ev)
}

func (t *Topic[T]) publishEvent(ctx context.Context, ev *Event[T]) error {
	return t.publish(ctx, ev, false)
}

// publish is Publish and PublishEvent; internal publishes (dead letters) are
// still accepted while Close drains the bus.
func (t *Topic[T]) publish(ctx context.Context, ev *Event[T], internal bool) error {
	subs, all, err := t.accept(ctx, ev, nil, internal)
	if err != nil {
		return err
	}
	if subs != nil {
		for _, s := range subs.sync {
			_ = s.deliverSync(ctx, ev) // failures are reported by deliver
		}
	}
	if all != nil && len(all.sync) > 0 {
		anyEv := boxed(ev)
		for _, s := range all.sync {
			_ = s.deliverSync(ctx, &anyEv)
		}
	}
	t.leave()
	return nil
}

// PublishWait publishes payload like Publish and then waits until every
// subscription has handled the event, including retries. It returns the
// errors.Join of the *HandlerError of every subscription whose handler
// failed, or, if ctx ends first, ctx's error (the event stays accepted).
//
// Asynchronous subscriptions handle the event in order with the events
// before it; Sync handlers run in parallel, at most WithWorkers at a time,
// each with ctx. A subscription whose policy dropped the event contributes an
// error wrapping ErrQueueFull. PublishWait called from a handler cannot wait
// for that same subscription when only the caller could handle the event:
// the event is queued for it and the result includes an error wrapping
// ErrDeadlock.
func (t *Topic[T]) PublishWait(ctx context.Context, payload T) error {
	ev := Event[T]{Payload: payload}
	w := newWaiter(callerWorker(ctx))
	subs, all, err := t.accept(ctx, &ev, w, false)
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(t.bus.cfg.workers)
	if subs != nil {
		for _, s := range subs.sync {
			g.Go(func() error {
				if err := s.deliverSync(ctx, &ev); err != nil {
					w.fail(err)
				}
				return nil
			})
		}
	}
	if all != nil && len(all.sync) > 0 {
		anyEv := boxed(&ev)
		for _, s := range all.sync {
			g.Go(func() error {
				if err := s.deliverSync(ctx, &anyEv); err != nil {
					w.fail(err)
				}
				return nil
			})
		}
	}
	_ = g.Wait() // the goroutines return nil; errors go to w
	t.leave()
	w.finish(nil) // the publisher's own hold
	select {
	case <-w.done:
		return w.err()
	case <-ctx.Done():
		return fmt.Errorf("eventbus: PublishWait on %s: %w", t.name, ctx.Err())
	}
}

// accept validates and stamps ev and queues it for every asynchronous
// subscription. On success the caller runs the Sync handlers of the returned
// lists and then calls t.leave.
func (t *Topic[T]) accept(ctx context.Context, ev *Event[T], w *waiter, internal bool) (*subList[T], *subList[any], error) {
	if t.validate != nil {
		// Validate a copy: the address of ev itself must not reach an
		// unknown function, or every event would be allocated on the heap.
		p := ev.Payload
		if err := t.validate(&p); err != nil {
			return nil, nil, &ValidationError{Topic: t.name, Err: err}
		}
	}
	if !t.enter(internal) {
		return nil, nil, ErrClosed
	}
	ev.Topic = t.name
	if ev.Time.IsZero() {
		ev.Time = clock.Now()
	}
	if ev.ID.IsZero() {
		ev.ID = t.ids.Next(ev.Time.UnixMilli())
	}
	var stalled *time.Timer
	defer func() {
		if stalled != nil {
			stalled.Stop()
		}
	}()
	for {
		t.mu.Lock()
		subs, all := t.subs.Load(), t.bus.all.Load()
		blocker, wait, err := enqueue(subs, all, ev, w)
		if blocker == nil && err == nil {
			t.latest, t.hasLatest = *ev, true
			t.mu.Unlock()
			t.published.Add(1)
			if subs.empty() && all.empty() {
				t.noSubs.Add(1)
			}
			return subs, all, nil
		}
		t.mu.Unlock()
		if err == nil {
			err = t.wait(ctx, blocker, wait, internal, &stalled)
		}
		if err != nil {
			t.leave()
			return nil, nil, err
		}
	}
}

// wait blocks until the full lane may have room, and returns nil to try
// again, or why not: ctx ended, Close began, or waiting would deadlock.
func (t *Topic[T]) wait(ctx context.Context, blocker *lane, room <-chan struct{}, internal bool, stalled **time.Timer) error {
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
	if internal {
		closing = nil // dead letters still go out while Close drains
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

// enqueue queues ev for every asynchronous subscription, or for none: it
// first reserves a place in each buffer, and if one keeps the publisher out
// it cancels the others and returns that lane, with the channel to wait on
// (Block) or the error (Reject).
func enqueue[T any](subs *subList[T], all *subList[any], ev *Event[T], w *waiter) (*lane, <-chan struct{}, error) {
	var tl []*subscriber[T]
	if subs != nil {
		tl = subs.async
	}
	var al []*subscriber[any]
	if all != nil {
		al = all.async
	}
	var anyEv Event[any]
	if len(al) > 0 {
		anyEv = boxed(ev)
	}
	var buf [32]slot
	res, blocker, wait := reserve(tl, ev, buf[:0])
	n := len(res)
	if blocker == nil {
		res, blocker, wait = reserve(al, &anyEv, res)
	}
	if blocker != nil {
		cancelReserved(tl, res[:n])
		cancelReserved(al, res[n:])
		if blocker.sub.policy == Reject {
			return blocker, nil, fmt.Errorf("%w: %s, publish to %s rejected", ErrQueueFull, blocker, ev.Topic)
		}
		return blocker, wait, nil
	}
	commit(tl, res[:n], ev, w)
	commit(al, res[n:], &anyEv, w)
	return nil, nil, nil
}

// slot is the outcome of one reservation.
type slot struct {
	r    queue.Result
	lane int
}

func reserve[T any](subs []*subscriber[T], ev *Event[T], res []slot) ([]slot, *lane, <-chan struct{}) {
	for _, s := range subs {
		li := s.laneOf(ev)
		r, wait := s.qs[li].Reserve(s.qpolicy)
		if r == queue.Full {
			return res, s.lanes[li], wait
		}
		res = append(res, slot{r, li})
	}
	return res, nil, nil
}

func cancelReserved[T any](subs []*subscriber[T], res []slot) {
	for i, r := range res {
		if r.r == queue.Reserved {
			subs[i].qs[r.lane].Cancel()
		}
	}
}

func commit[T any](subs []*subscriber[T], res []slot, ev *Event[T], w *waiter) {
	for i, s := range subs {
		switch res[i].r {
		case queue.Reserved:
			iw := w
			if w != nil && w.self != nil && w.self.lane == s.lanes[res[i].lane] && len(w.self.lane.workers) == 1 {
				iw = nil
				w.fail(fmt.Errorf("%w: PublishWait from the handler of %s cannot wait for it; the event is queued for it", ErrDeadlock, w.self.lane))
			}
			if iw != nil {
				iw.add()
			}
			old, out := s.qs[res[i].lane].Commit(item[T]{ev: *ev, w: iw})
			switch out {
			case queue.Evicted:
				s.c.dropped.Add(1)
				if old.w != nil {
					old.w.finish(dropError(s.Subscription, &old.ev))
				}
			case queue.Refused: // unsubscribed or abandoned since the reservation
				s.abandon(&old, s.bus.aborted.Load())
			}
		case queue.Dropped:
			s.c.dropped.Add(1)
			if w != nil {
				w.fail(dropError(s.Subscription, ev))
			}
		}
	}
}

func dropError[T any](s *Subscription, ev *Event[T]) error {
	return fmt.Errorf("%w: %s dropped %s event %s (%v)", ErrQueueFull, s, ev.Topic, ev.ID, s.policy)
}

// boxed converts an event for SubscribeAll handlers.
func boxed[T any](ev *Event[T]) Event[any] {
	return Event[any]{ID: ev.ID, Topic: ev.Topic, Time: ev.Time, Payload: ev.Payload, Metadata: ev.Metadata}
}

// Subscribe registers h for the topic's events. By default h runs in a
// goroutine of its own, fed by a buffer of WithQueueSize events, one event at
// a time in publish order; the options change that (Sync, Queue,
// Concurrency, OnFull, Name, Retry, Replay, PartitionBy). It returns an
// error wrapping ErrNilHandler for a nil h, ErrInvalidOption for a bad
// option, and ErrClosed once Close has begun.
func (t *Topic[T]) Subscribe(h Handler[T], opts ...SubOption) (*Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: Subscribe on %s", ErrNilHandler, t.name)
	}
	cfg, err := t.bus.subConfig(opts)
	if err != nil {
		return nil, err
	}
	s, err := newSubscriber(t.bus, t.name, h, cfg, callerLine(1))
	if err != nil {
		return nil, err
	}
	s.list, s.listMu = &t.subs, &t.mu
	err = attach(t.bus, s, func() []Event[T] {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.subs.Store(t.subs.Load().with(s))
		if !s.replay || !t.hasLatest {
			return nil
		}
		return s.replayLocked([]Event[T]{t.latest})
	})
	if err != nil {
		return nil, err
	}
	return s.Subscription, nil
}

// Latest returns the last event published on the topic, and false if there
// has been none. It is the retained value a late subscriber can start from.
func (t *Topic[T]) Latest() (Event[T], bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.latest, t.hasLatest
}

// Stats returns a snapshot of the topic's counters and subscriptions.
func (t *Topic[T]) Stats() TopicStats {
	ts := TopicStats{
		Name:          t.name,
		Type:          t.typ.String(),
		Published:     t.published.Load(),
		NoSubscribers: t.noSubs.Load(),
	}
	sum := t.retired.c.load()
	t.retired.mu.Lock()
	lat := t.retired.latency
	t.retired.mu.Unlock()
	t.subs.Load().each(func(s *Subscription) {
		ss := s.Stats()
		ts.Subscriptions = append(ts.Subscriptions, ss)
		ts.QueueSize += ss.QueueLen
		ts.HighWater = max(ts.HighWater, ss.HighWater)
		if !s.folded.Load() {
			sum.add(ss.tally())
			lat.Add(s.latency.Snapshot())
		}
	})
	ts.setTally(sum)
	ts.LatencyP50, ts.LatencyP99 = lat.Quantile(0.50), lat.Quantile(0.99)
	return ts
}

func (ts *TopicStats) setTally(t tally) {
	ts.Dispatched, ts.Delivered, ts.Errors, ts.Panics = t.dispatched, t.delivered, t.errors, t.panics
	ts.Retries, ts.Dropped, ts.DeadLettered, ts.Undelivered = t.retries, t.dropped, t.deadLettered, t.undelivered
}

func (t *Topic[T]) stats() TopicStats { return t.Stats() }

func (t *Topic[T]) discardAll() {
	t.subs.Load().each(func(s *Subscription) { s.typed.discard(true) })
}

func (t *Topic[T]) lock()   { t.mu.Lock() }
func (t *Topic[T]) unlock() { t.mu.Unlock() }

func (t *Topic[T]) latestLocked() (Event[any], bool) {
	if !t.hasLatest {
		return Event[any]{}, false
	}
	return boxed(&t.latest), true
}

// enter registers a publish under way, unless the bus is closing (internal
// publishes are let in until Close has drained the other subscriptions).
func (c *topicCore) enter(internal bool) bool {
	c.inflight.Add(1)
	if !internal && c.bus.closed.Load() {
		c.leave()
		return false
	}
	return true
}

func (c *topicCore) leave() {
	if c.inflight.Add(-1) == 0 && c.bus.closed.Load() {
		select {
		case c.bus.quiet <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// quiesce waits until no publish is under way on the topic.
func (c *topicCore) quiesce(ctx context.Context) error {
	for c.inflight.Load() != 0 {
		select {
		case <-c.bus.quiet:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type validator interface{ Validate() error }

// validatorOf returns a function that validates a *T in place, or nil if T
// has no Validate method (with a value or a pointer receiver).
func validatorOf[T any]() func(*T) error {
	if !reflect.PointerTo(reflect.TypeFor[T]()).Implements(reflect.TypeFor[validator]()) {
		return nil
	}
	return func(p *T) error { return any(p).(validator).Validate() }
}

// checkTopicName enforces the topic name rules of NewTopic.
func checkTopicName(name string) error {
	if len(name) == 0 || len(name) > 255 {
		return fmt.Errorf("%w: %q: want 1 to 255 bytes, got %d", ErrInvalidTopic, name, len(name))
	}
	tokenLen := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if tokenLen == 0 {
				return fmt.Errorf("%w: %q: empty token at byte %d", ErrInvalidTopic, name, i)
			}
			tokenLen = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			tokenLen++
		default:
			return fmt.Errorf("%w: %q: byte %q at %d is not a letter, digit, '_', '-' or '.'", ErrInvalidTopic, name, c, i)
		}
	}
	if tokenLen == 0 {
		return fmt.Errorf("%w: %q: empty last token", ErrInvalidTopic, name)
	}
	return nil
}
