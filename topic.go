package eventbus

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/quantumtrader/eventbus/internal/hist"
	"github.com/quantumtrader/eventbus/internal/idgen"
	"github.com/quantumtrader/eventbus/internal/ring"
	"github.com/quantumtrader/eventbus/internal/topicname"
)

// Topic is a named stream of events whose payloads have type T. Get one with
// NewTopic or MustTopic; its methods are safe for concurrent use.
type Topic[T any] struct {
	topicCore
	validate func(*T) error // nil unless T has a Validate() error method
	remote   bool           // the bus has a Transport: publish through it
	subs     atomic.Pointer[subList[T]]

	ids       *idgen.Source
	ring      *ring.Ring[item[T]] // shared by the lanes that can share; nil until the first
	closed    bool                // Close has begun: only internal publishes pass
	latest    Event[T]
	hasLatest bool
	published uint64
	noSubs    uint64
}

// topicCore is the part of a topic the Bus handles without knowing T.
type topicCore struct {
	bus  *Bus
	name string
	typ  reflect.Type

	// mu is the producer lock of the topic's rings. Holding it, a publisher
	// stamps the event's ID, checks every subscription has room, and writes
	// the event, so every subscription sees the events of concurrent
	// publishers in the same order, a Reject is all or nothing, and Replay
	// takes the latest event atomically with the subscription. Handlers
	// never run under it. It also guards syncInflight and the call counts
	// of the topic's Sync subscriptions (Subscription.calls).
	mu           sync.Mutex
	syncInflight int          // publishes running Sync handlers, for Close
	inflight     atomic.Int64 // publishes waiting for the Transport, for Close
	retired      retiredStats // what its unsubscribed subscriptions counted
}

// topicEntry is a registered topic of any payload type.
type topicEntry interface {
	core() *topicCore
	Stats() TopicStats
	shut()      // Close: no more publishes but internal ones
	closeRing() // Close: the shared ring's workers drain and exit
	lock()
	unlock()
	latestLocked() (Event[any], bool)
	publishedCount() uint64
	decodeAny(env *Envelope) (Event[any], error)
}

func (c *topicCore) core() *topicCore { return c }

// NewTopic returns the topic of bus b with the given name and payload type T,
// creating it on first use. Asking again with the same name and T returns the
// same *Topic; a different T is an error wrapping ErrTopicType. The name is
// one or more dot-separated tokens of letters, digits, '_' and '-', at most
// 255 bytes (it doubles as a NATS subject); anything else wraps ErrInvalidTopic.
//
// On a bus with a Transport, a new topic gets a consumer on the broker for
// each SubscribeAll subscription of the bus; if one cannot be made,
// NewTopic returns the error and creates nothing.
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
		topicCore: topicCore{bus: b, name: name, typ: reflect.TypeFor[T](), retired: retiredStats{retiring: map[*Subscription]struct{}{}}},
		ids:       b.ids.Derive(uint64(len(b.order))),
		validate:  validatorOf[T](),
		remote:    b.cfg.transport != nil,
		closed:    b.closed.Load(),
	}
	if err := b.listenNew(name, t.decodeAny); err != nil {
		return nil, err
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

// publish is Publish and PublishEvent; internal publishes (dead letters) are
// still accepted while Close drains the bus.
func (t *Topic[T]) publish(ctx context.Context, ev *Event[T], internal bool) error {
	if t.remote {
		return t.publishRemote(ctx, ev, internal)
	}
	var anyEv Event[any]
	subs, all, n, err := t.accept(ctx, ev, &anyEv, nil, internal)
	if err != nil {
		return err
	}
	if !hasSync(subs, all) {
		return nil
	}
	var buf [64]outcome
	var r syncRun[T]
	r.ts, r.ledger = syncOf(subs)
	r.out = outcomes(buf[:], len(r.ts))
	if all != nil && len(all.sync) > 0 {
		r.as, r.allOut = all.sync, outcomes(buf[min(len(r.ts), len(buf)):], len(all.sync))
	}
	// No panic gets past publishSync to skip finishSync and keep Close
	// waiting: it returns the logger's, to raise once the publish is
	// finished.
	escaped := publishSync(ctx, r.ts, ev, n, r.out)
	if len(r.as) > 0 {
		boxOnce(&anyEv, ev)
		escaped = cmp.Or(escaped, publishSync(ctx, r.as, &anyEv, n, r.allOut))
	}
	t.finishSync(&r)
	if escaped != nil {
		panic(escaped.value)
	}
	return nil
}

// syncRun is the Sync handlers of a publish and what became of their calls.
type syncRun[T any] struct {
	ts     []*subscriber[T] // the topic's
	ledger *syncLedger      // that counts their calls
	out    []outcome
	as     []*subscriber[any] // SubscribeAll's
	allOut []outcome
}

// finishSync ends a publish that ran Sync handlers: it counts the calls
// of SubscribeAll's Sync subscriptions (countSync), then, under the topic's
// lock, those of the topic's Sync subscriptions, and tells Close when the
// last such publish is over. The topic's are counted with one increment of
// their ledger, whatever their number (see syncLedger); only a call that
// failed or was skipped, or a subscription that left the ledger, takes a
// look at the subscriptions.
func (t *Topic[T]) finishSync(r *syncRun[T]) {
	countSync(r.as, r.allOut)
	subs, out, l := r.ts, r.out, r.ledger
	var late []int // calls of subscriptions that Unsubscribe retired meanwhile
	t.mu.Lock()
	if l != nil {
		l.done++
		l.inflight--
		if l.leavers || !allHandled(out) {
			late = correctSync(l, subs, out)
		}
		if !l.current && l.inflight == 0 {
			l.fold()
		}
	}
	t.syncInflight--
	quiet := t.syncInflight == 0 && t.bus.closed.Load()
	t.mu.Unlock()
	for _, i := range late {
		subs[i].retireLate(callTally(out[i] == failed))
	}
	if quiet {
		t.bus.nudgeQuiet()
	}
}

// correctSync adjusts the counts of a publish that l's done has just
// counted as a handled call of each of its members: a skipped call takes
// one call and one delivery back, a failed one the delivery. A
// subscription that has left the ledger (retire) counts its call itself,
// late: correctSync returns the indexes of those. The caller holds the
// topic's lock.
func correctSync[T any](l *syncLedger, subs []*subscriber[T], out []outcome) (late []int) {
	for i, s := range subs {
		if s.gate.Load()&gateFolded != 0 {
			if out[i] != skipped {
				late = append(late, i)
			}
			continue
		}
		switch out[i] {
		case skipped:
			s.calls--
			s.delivers--
		case failed:
			s.delivers--
		}
	}
	return late
}

func allHandled(out []outcome) bool {
	for _, o := range out {
		if o != handled {
			return false
		}
	}
	return true
}

func syncOf[T any](l *subList[T]) ([]*subscriber[T], *syncLedger) {
	if l == nil {
		return nil, nil
	}
	return l.sync, l.ledger
}

func hasSync[T any](subs *subList[T], all *subList[any]) bool {
	return subs != nil && len(subs.sync) > 0 || all != nil && len(all.sync) > 0
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
//
// On a bus with a Transport the handlers may be in other processes, which
// PublishWait cannot wait for: it publishes nothing and returns an error
// wrapping errors.ErrUnsupported (or, as above, ErrClosed or a
// *ValidationError).
func (t *Topic[T]) PublishWait(ctx context.Context, payload T) error {
	if t.remote {
		return t.publishWaitRemote(payload)
	}
	var ev Event[T]
	ev.Payload = payload // see Publish
	w := newWaiter(callerWorker(ctx))
	var anyEv Event[any]
	subs, all, _, err := t.accept(ctx, &ev, &anyEv, w, false)
	if err != nil {
		return err
	}
	if hasSync(subs, all) {
		var g errgroup.Group
		g.SetLimit(t.bus.cfg.workers)
		var r syncRun[T]
		r.ts, r.ledger = syncOf(subs)
		r.out = outcomes(nil, len(r.ts))
		var escaped atomic.Pointer[recovered] // see publish
		goSync(ctx, &g, r.ts, &ev, w, r.out, &escaped)
		if all != nil && len(all.sync) > 0 {
			shared := anyEv // what the goroutines share escapes; anyEv itself stays on the stack
			boxOnce(&shared, &ev)
			r.as, r.allOut = all.sync, outcomes(nil, len(all.sync))
			goSync(ctx, &g, r.as, &shared, w, r.allOut, &escaped)
		}
		_ = g.Wait() // the goroutines return nil; errors go to w
		t.finishSync(&r)
		if p := escaped.Load(); p != nil {
			panic(p.value)
		}
	}
	w.finish(nil) // the publisher's own hold
	select {
	case <-w.done:
		return w.err()
	case <-ctx.Done():
		return fmt.Errorf("eventbus: PublishWait on %s: %w", t.name, ctx.Err())
	}
}

// goSync runs PublishWait's Sync handlers of subs on g, each failure going
// to w and each outcome to out.
func goSync[T any](ctx context.Context, g *errgroup.Group, subs []*subscriber[T], ev *Event[T], w *waiter, out []outcome, escaped *atomic.Pointer[recovered]) {
	for i, s := range subs {
		g.Go(func() error {
			var p *recovered
			out[i], p = guard(func() outcome {
				o, err := s.callTimed(ctx, ev)
				if err != nil {
					w.fail(err)
				}
				return o
			})
			if p != nil {
				escaped.CompareAndSwap(nil, p)
			}
			return nil
		})
	}
}

// accept validates and stamps ev and writes it for every asynchronous
// subscription, boxing it into anyEv if SubscribeAll ones take it. On
// success, if there are Sync subscriptions, the caller runs their handlers
// and then calls t.finishSync; n is the event's number on the topic.
func (t *Topic[T]) accept(ctx context.Context, ev *Event[T], anyEv *Event[any], w *waiter, internal bool) (subs *subList[T], all *subList[any], n uint64, err error) {
	if err := t.invalid(&ev.Payload); err != nil {
		return nil, nil, 0, err
	}
	ev.Topic = t.name
	if ev.Time.IsZero() {
		ev.Time = t.bus.cfg.clock().UTC() // before locking: the clock is the slowest step
	}
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
				t.syncInflight++ // Close waits for the Sync handlers
				if subs != nil && subs.ledger != nil {
					subs.ledger.inflight++
				}
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

// verdict is what the publisher decided for one subscription's lane.
type verdict uint8

const (
	take   verdict = iota // the lane has room
	drop                  // full, DropNewest: the lane skips the event
	evict                 // full, DropOldest: the oldest waiting event makes room
	closed                // the lane has left its ring
)

// offer writes ev for every asynchronous subscription, or for none: it first
// checks each lane, and if one keeps the publisher out it returns that lane
// with the channel to wait on (Block) or the error (Reject). The caller holds
// t.mu; offer takes and releases the locks of SubscribeAll rings.
func (t *Topic[T]) offer(subs *subList[T], all *subList[any], ev *Event[T], anyEv *Event[any], w *waiter) (*lane, <-chan struct{}, error) {
	var tl []*subscriber[T]
	if subs != nil {
		tl = subs.async
	}
	var al []*subscriber[any]
	if all != nil {
		al = all.async
	}
	if len(tl) == 0 && len(al) == 0 {
		return nil, nil, nil
	}
	// Every subscription is a lane of the topic's ring, and the ring has
	// room in each of them (a group of the ring that is no longer in subs,
	// a subscription leaving, only makes Room stricter): one write serves
	// them all. Subscriptions in subs are open: Unsubscribe leaves the list,
	// under the lock held here, before it closes the gate.
	if len(al) == 0 && w == nil && subs.allShared && t.ring != nil && t.ring.Room() {
		put(t.ring, ev, nil)
		return nil, nil, nil
	}
	for _, s := range al {
		s.prodMu.Lock()
	}
	blocker, wait, err := t.offerLocked(tl, al, ev, anyEv, w)
	for _, s := range al {
		s.prodMu.Unlock()
	}
	return blocker, wait, err
}

// offerLocked is offer with the SubscribeAll rings locked.
func (t *Topic[T]) offerLocked(tl []*subscriber[T], al []*subscriber[any], ev *Event[T], anyEv *Event[any], w *waiter) (*lane, <-chan struct{}, error) {
	var buf [32]verdict
	vs := buf[:0]
	if len(al) > 0 {
		*anyEv = boxed(ev)
	}
	vs, blocker, wait := check(tl, ev, vs)
	if blocker == nil {
		vs, blocker, wait = check(al, anyEv, vs)
	}
	if blocker != nil {
		if blocker.sub.policy == Reject {
			return blocker, nil, fmt.Errorf("%w: %s, publish to %s rejected", ErrQueueFull, blocker, ev.Topic)
		}
		return blocker, wait, nil
	}
	n := len(tl)
	if w != nil {
		w.add(owed(tl, vs[:n], ev, w) + owed(al, vs[n:], anyEv, w))
	}
	// One write to the topic's ring serves all its shared lanes.
	if t.ring != nil && sharesRing(tl, vs[:n]) {
		put(t.ring, ev, w)
	}
	write(tl, vs[:n], ev, w)
	write(al, vs[n:], anyEv, w)
	return nil, nil, nil
}

// check decides, lane by lane, whether ev can be written; it stops at the
// first lane that keeps the publisher out.
func check[T any](subs []*subscriber[T], ev *Event[T], vs []verdict) ([]verdict, *lane, <-chan struct{}) {
	for _, s := range subs {
		l := s.laneOf(ev)
		switch {
		case l.group == nil || s.gate.Load()&gateClosed != 0:
			vs = append(vs, closed)
		case l.group.Room():
			vs = append(vs, take)
		case s.policy == DropNewest:
			vs = append(vs, drop)
		case s.policy == DropOldest:
			vs = append(vs, evict)
		case s.policy == Reject:
			return vs, l.lane, nil
		default:
			return vs, l.lane, l.group.WaitRoom()
		}
	}
	return vs, nil, nil
}

// owed counts the deliveries a PublishWait waits for, and records the ones
// it cannot have.
func owed[T any](subs []*subscriber[T], vs []verdict, ev *Event[T], w *waiter) int {
	n := 0
	for i, s := range subs {
		switch vs[i] {
		case take, evict:
			if l := s.laneOf(ev); l.lane == w.selfLane {
				w.fail(fmt.Errorf("%w: PublishWait from the handler of %s cannot wait for it; the event is queued for it", ErrDeadlock, l.lane))
			} else {
				n++
			}
		case drop:
			w.fail(dropError(s.Subscription, ev))
		}
	}
	return n
}

func sharesRing[T any](subs []*subscriber[T], vs []verdict) bool {
	for i, s := range subs {
		if vs[i] == take && s.lanes[0].shared {
			return true
		}
	}
	return false
}

// write puts ev into the private ring of each lane that takes it.
func write[T any](subs []*subscriber[T], vs []verdict, ev *Event[T], w *waiter) {
	for i, s := range subs {
		l := s.laneOf(ev)
		switch vs[i] {
		case drop:
			s.c.dropped.Add(1)
			continue
		case evict:
			var old item[T]
			if l.group.Evict(&old) {
				s.c.dropped.Add(1)
				if old.w != nil && old.w.selfLane != l.lane {
					old.w.finish(dropError(s.Subscription, &old.ev))
				}
			}
		case closed:
			continue
		}
		if !l.shared {
			put(l.ring, ev, w)
		}
	}
}

// put writes ev and w in r's next slot, without a copy of them on the stack.
func put[T any](r *ring.Ring[item[T]], ev *Event[T], w *waiter) {
	it := r.Claim()
	it.ev, it.w = *ev, w
	r.Commit()
}

func dropError[T any](s *Subscription, ev *Event[T]) error {
	return fmt.Errorf("%w: %s dropped %s event %s (%v)", ErrQueueFull, s, ev.Topic, ev.ID, s.policy)
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

// Subscribe registers h for the topic's events. By default h runs in a
// goroutine of its own, fed by a buffer of WithQueueSize events, one event at
// a time in publish order; the options change that (Sync, Queue,
// Concurrency, OnFull, Name, Retry, Replay, PartitionBy). It returns an
// error wrapping ErrNilHandler for a nil h, ErrInvalidOption for a bad
// option, and ErrClosed once Close has begun. On a bus with a Transport it
// makes or joins the subscription's consumer on the broker (see
// WithTransport), and returns the error if it cannot.
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
	s.list, s.listMu, s.prodMu = &t.subs, &t.mu, &t.mu
	if s.sync {
		s.callsMu = &t.mu // finishSync counts its calls
	}
	if s.remote != nil {
		err = attachRemote(t.bus, s, func() error {
			t.mu.Lock()
			t.subs.Store(t.subs.Load().with(s))
			t.mu.Unlock()
			if err := s.listen(t.name, t.decode); err != nil {
				s.detach()
				return err
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return s.Subscription, nil
	}
	err = attach(t.bus, s, func() []Event[T] {
		t.mu.Lock()
		defer t.mu.Unlock()
		s.joinShared(t.sharedRing)
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
	t.mu.Lock()
	ts := TopicStats{Name: t.name, Type: t.typ.String(), Published: t.published, NoSubscribers: t.noSubs}
	t.mu.Unlock()
	sum, lat := t.retired.load(t.subs.Load().each, func(s *Subscription) (Counts, hist.Snapshot) {
		ss, sl := s.stats()
		ts.Subscriptions = append(ts.Subscriptions, ss)
		ts.QueueSize += ss.QueueLen
		ts.HighWater = max(ts.HighWater, ss.HighWater)
		return ss.Counts, sl
	})
	ts.Counts = sum
	ts.LatencyP50, ts.LatencyP99 = lat.Quantile(0.50), lat.Quantile(0.99)
	return ts
}

// sharedRing returns the topic's shared ring, making it on first use. The
// caller holds t.mu.
func (t *Topic[T]) sharedRing() *ring.Ring[item[T]] {
	if t.ring == nil {
		t.ring = ring.New[item[T]](t.bus.cfg.queueSize)
	}
	return t.ring
}

func (t *Topic[T]) shut() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

func (t *Topic[T]) closeRing() {
	t.mu.Lock()
	if t.ring != nil {
		t.ring.Close()
	}
	t.mu.Unlock()
}

func (t *Topic[T]) publishedCount() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.published
}

func (t *Topic[T]) lock()   { t.mu.Lock() }
func (t *Topic[T]) unlock() { t.mu.Unlock() }

func (t *Topic[T]) latestLocked() (Event[any], bool) {
	if !t.hasLatest {
		return Event[any]{}, false
	}
	return boxed(&t.latest), true
}

// leave ends a publish through the Transport.
func (c *topicCore) leave() {
	if c.inflight.Add(-1) == 0 && c.bus.closed.Load() {
		c.bus.nudgeQuiet()
	}
}

// busy reports whether a publish is under way on the topic.
func (c *topicCore) busy() bool {
	c.mu.Lock()
	n := c.syncInflight
	c.mu.Unlock()
	return n != 0 || c.inflight.Load() != 0
}

// quiesce waits until no publish is under way on the topic. It takes the
// wake-up channel before it looks: a publish that ends after the look
// closes that channel.
func (c *topicCore) quiesce(ctx context.Context) error {
	for {
		quiet := c.bus.quietCh()
		if !c.busy() {
			return nil
		}
		select {
		case <-quiet:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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

// invalid returns a *ValidationError if T has a Validate method and the
// payload fails it. It validates a copy, made only then: the address of the
// event itself must not reach an unknown function, or every event would be
// allocated on the heap.
func (t *Topic[T]) invalid(payload *T) error {
	if t.validate == nil {
		return nil
	}
	p := *payload
	if err := t.validate(&p); err != nil {
		return &ValidationError{Topic: t.name, Err: err}
	}
	return nil
}

// checkTopicName enforces the topic name rules of NewTopic.
func checkTopicName(name string) error {
	if err := topicname.Check(name); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidTopic, name, err)
	}
	return nil
}
