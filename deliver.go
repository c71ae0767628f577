package eventbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quantumtrader/eventbus/internal/ring"
)

// subscriber is the typed half of a Subscription: the handler, its lanes,
// and the list it belongs to (a topic's, or the bus's SubscribeAll list).
type subscriber[T any] struct {
	*Subscription
	handler Handler[T]
	key     func(T) string // PartitionBy; nil for one lane
	lanes   []*laneT[T]
	list    *atomic.Pointer[subList[T]] // copy-on-write, replaced under listMu
	listMu  sync.Locker
	// prodMu is the producer lock of the subscription's rings: the topic's
	// lock, or, for SubscribeAll, a lock of its own taken by the publishers
	// of every topic.
	prodMu sync.Locker
	remote *remoteState // set on a bus with a Transport, instead of lanes
}

// laneT is the typed half of a lane: its ring and its group in it.
type laneT[T any] struct {
	*lane
	ring   *ring.Ring[item[T]]
	group  *ring.Group[item[T]]
	shared bool      // the topic's ring, shared with its other shared lanes
	replay []item[T] // for Replay: handed to the first worker before the ring's events
}

// item is one delivery in a ring; w is set for PublishWait.
type item[T any] struct {
	ev Event[T]
	w  *waiter
}

var partitionSeed = maphash.MakeSeed()

// runLength is how many events a lone worker takes from its ring at once.
const runLength = 64

func newSubscriber[T any](b *Bus, topic string, h Handler[T], cfg subConfig, where string) (*subscriber[T], error) {
	s := &subscriber[T]{
		Subscription: &Subscription{
			bus: b, topic: topic, where: where, name: cfg.name,
			sync: cfg.sync, concurrency: cfg.concurrency, policy: cfg.policy,
			maxAttempts: cfg.maxAttempts, backoff: cfg.backoff, replay: cfg.replay,
			gone: make(chan struct{}), done: make(chan struct{}),
		},
		handler: h,
	}
	if s.name == "" {
		s.name = funcName(h)
	}
	if cfg.partition != nil {
		key, ok := cfg.partition.(func(T) string)
		if !ok {
			var zero T
			return nil, fmt.Errorf("%w: PartitionBy takes a func(%T) string on topic %s, not a %T", ErrInvalidOption, zero, topic, cfg.partition)
		}
		s.key = key
	}
	s.typed = s
	if cfg.sync {
		close(s.done)
		return s, nil
	}
	if b.cfg.transport != nil {
		s.remote = newRemoteState(b, cfg)
		s.Subscription.remote = true
		return s, nil
	}
	lanes, perLane, size := 1, cfg.concurrency, cfg.queueSize
	if s.key != nil && cfg.concurrency > 1 {
		lanes, perLane, size = cfg.concurrency, 1, (cfg.queueSize+cfg.concurrency-1)/cfg.concurrency
	}
	batch := runLength
	if perLane > 1 || cfg.policy == DropOldest {
		batch = 1 // other workers share the lane; DropOldest evicts from the ring
	}
	shared := topic != "*" && s.key == nil && (cfg.policy == Block || cfg.policy == Reject) && size <= b.cfg.queueSize
	for i := range lanes {
		l := &laneT[T]{lane: &lane{sub: s.Subscription, index: i, size: size, workers: perLane, batch: batch}, shared: shared}
		if !shared {
			l.ring = ring.New[item[T]](size)
			l.setGroup(l.ring.Add(size, perLane, batch))
		}
		s.lanes = append(s.lanes, l)
		s.Subscription.lanes = append(s.Subscription.lanes, l.lane)
	}
	return s, nil
}

// setGroup binds the lane to its group and makes a worker per ring worker.
func (l *laneT[T]) setGroup(g *ring.Group[item[T]]) {
	l.group = g
	l.full = g.Full
	l.length = func() (int, int, int) { return g.Len(), g.Cap(), g.HighWater() }
	l.ws = nil
	for _, rw := range g.Workers() {
		l.ws = append(l.ws, &worker{sub: l.sub, lane: l.lane, progress: rw.Progress, asleep: rw.Asleep})
	}
}

// joinShared gives the shared lanes their group in the topic's ring. The
// caller holds the topic's lock.
func (s *subscriber[T]) joinShared(r func() *ring.Ring[item[T]]) {
	for _, l := range s.lanes {
		if l.shared {
			l.ring = r()
			l.setGroup(l.ring.Add(l.size, l.workers, l.batch))
		}
	}
}

// laneOf picks the lane of an event.
func (s *subscriber[T]) laneOf(ev *Event[T]) *laneT[T] {
	if len(s.lanes) < 2 {
		return s.lanes[0]
	}
	return s.lanes[maphash.String(partitionSeed, s.key(ev.Payload))%uint64(len(s.lanes))]
}

// start launches the workers in the bus's errgroup.
func (s *subscriber[T]) start() {
	n := 0
	for _, l := range s.lanes {
		n += len(l.ws)
	}
	s.running.Store(int32(n))
	for _, l := range s.lanes {
		for i, rw := range l.group.Workers() {
			w := l.ws[i]
			rw.Idle = w.flush
			ctx := workerContext(s.bus.handlerCtx, w)
			var replay []item[T]
			if i == 0 {
				replay, l.replay = l.replay, nil
			}
			s.bus.workers.Go(func() error {
				defer s.exit(w)
				s.run(ctx, w, rw, replay)
				return nil
			})
		}
	}
}

func (s *subscriber[T]) detach() {
	s.listMu.Lock()
	s.list.Store(s.list.Load().without(s))
	s.listMu.Unlock()
}

// closeQueue tells the workers that nothing more comes; they drain and exit.
// On a transport the receivers stop: the broker keeps what a durable
// consumer has not received.
func (s *subscriber[T]) closeQueue() {
	if s.remote != nil {
		_ = s.stopReceivers() // logged; the broker redelivers what was not settled
		return
	}
	s.prodMu.Lock()
	defer s.prodMu.Unlock()
	for _, l := range s.lanes {
		if !l.shared {
			l.ring.Close()
		}
	}
}

// drain waits until the broker has no more events for the subscription's
// consumers than it held when drain began; in memory it returns at once, as
// closeQueue lets the workers drain their rings.
func (s *subscriber[T]) drain(ctx context.Context) error {
	if s.remote == nil {
		return nil
	}
	return s.drainRemote(ctx)
}

// leaveRings takes back what the lanes had not handed out, settling
// PublishWait waiters, and stops the lanes' groups. Events count as
// undelivered when the bus gave up on them (Close past its deadline), not
// when the subscription left.
func (s *subscriber[T]) leaveRings(undelivered bool) {
	if s.sync {
		return
	}
	s.prodMu.Lock()
	defer s.prodMu.Unlock()
	var err error
	for _, l := range s.lanes {
		n := l.group.Discard(func(it *item[T]) {
			if undelivered {
				err = s.abandoned(&it.ev)
			}
			if it.w != nil && it.w.selfLane != l.lane {
				it.w.finish(err)
			}
		})
		if undelivered {
			n += l.group.TakeRuns()
			s.c.undelivered.Add(uint64(n))
			if !l.shared {
				l.ring.Close()
			}
			continue
		}
		l.ring.Remove(l.group)
	}
}

func (s *subscriber[T]) discard(undelivered bool) error {
	if s.remote != nil {
		return s.stopReceivers()
	}
	s.leaveRings(undelivered)
	return nil
}

func (s *subscriber[T]) abandoned(ev *Event[T]) error {
	return fmt.Errorf("eventbus: %s: event %s abandoned: %w", s.Subscription, ev.ID, ErrClosed)
}

// run is one worker goroutine: it takes events off its lane's ring and
// handles them in order until the ring is closed and read, or the lane is
// removed.
func (s *subscriber[T]) run(ctx context.Context, w *worker, rw *ring.Worker[item[T]], replay []item[T]) {
	for i := range replay {
		s.handleItem(ctx, w, &replay[i])
	}
	for {
		it, p := s.runFrom(ctx, w, rw)
		if p == nil {
			return
		}
		// A handler panicked on its first attempt: go on with the rest of
		// the delivery, then with the next event.
		if err := s.retry(ctx, &it.ev, s.failure(&it.ev, 1, p.stack, &panicError{value: p.value})); err == nil {
			w.delivered++
		}
	}
}

// runFrom handles events until the ring is done, or until a handler panics:
// then it returns the event and the panic. Handlers are called directly, and
// panics recovered once per run of events rather than once per event; the
// rarer cases (a PublishWait, a timed call, an abandoned or unsubscribed
// event) go through handleItem.
func (s *subscriber[T]) runFrom(ctx context.Context, w *worker, rw *ring.Worker[item[T]]) (cur *item[T], p *recovered) {
	defer func() {
		if r := recover(); r != nil {
			p = &recovered{value: r, stack: debug.Stack()}
		}
	}()
	for {
		it, st := rw.Next()
		switch st {
		case ring.Done:
			return nil, nil
		case ring.Taken: // Close gave up on it and counted it
			if it.w != nil && it.w.selfLane != w.lane {
				it.w.finish(s.abandoned(&it.ev))
			}
			continue
		}
		if it.w != nil || sampled(w.dispatched+1) || s.gate.Load()&gateClosed != 0 || s.bus.aborted.Load() {
			s.handleItem(ctx, w, it)
			continue
		}
		cur = it
		w.dispatched++
		if err := s.handler(ctx, it.ev); err != nil {
			if s.retry(ctx, &it.ev, s.failure(&it.ev, 1, nil, err)) == nil {
				w.delivered++
			}
		} else {
			w.delivered++
		}
		if w.dispatched%runLength == 0 {
			w.flush()
		}
	}
}

func (s *subscriber[T]) handleItem(ctx context.Context, w *worker, it *item[T]) {
	var err error
	switch {
	case s.bus.aborted.Load():
		s.c.undelivered.Add(1)
		err = s.abandoned(&it.ev)
	case s.gate.Load()&gateClosed != 0:
		// unsubscribed: no delivery starts, and nothing is owed
	default:
		w.dispatched++
		if err = s.deliver(ctx, &it.ev, sampled(w.dispatched)); err == nil {
			w.delivered++
		}
		if w.dispatched%runLength == 0 {
			w.flush()
		}
	}
	if it.w != nil && it.w.selfLane != w.lane {
		w.flush() // PublishWait's caller may look at the statistics next
		it.w.finish(err)
	}
}

// outcome is what became of one Sync handler's call in a publish.
type outcome uint8

const (
	handled outcome = iota // called, and it (or a retry) succeeded
	failed                 // called, and every attempt failed
	skipped                // not called: the subscription was unsubscribed
)

// outcomes returns n cleared outcomes (handled, until a call says
// otherwise), in buf if it is large enough: the publish path keeps them on
// its stack.
func outcomes(buf []outcome, n int) []outcome {
	if n > len(buf) {
		return make([]outcome, n)
	}
	buf = buf[:n]
	clear(buf)
	return buf
}

// publishSync runs the Sync handlers of subs for ev, one after the other,
// in the publisher's goroutine, and records in out[i] what became of
// subs[i]'s call; the caller counts the calls afterwards, all at once
// (finishSync, countSync). A handler costs a load: Unsubscribe's bit is
// checked with it (a call that saw it clear started before Unsubscribe
// returned, exactly as with a lock). Panics are recovered once per publish,
// not once per handler: after a panic, the loop resumes with the next
// handler. n is the publish's number on the topic: it decides which calls
// are timed for the latency statistics (see sampled).
//
// It returns the first panic of the logger, if any (see guard), for the
// publisher to raise again once the publish is finished.
func publishSync[T any](ctx context.Context, subs []*subscriber[T], ev *Event[T], n uint64, out []outcome) (escaped *recovered) {
	if n <= 16 {
		for i, s := range subs {
			var p *recovered
			out[i], p = guard(func() outcome {
				o, _ := s.callTimed(ctx, ev)
				return o
			})
			escaped = cmp.Or(escaped, p)
		}
		return escaped
	}
	timed := -1
	if sampled(n) && len(subs) > 0 {
		timed = int(n / sampleEvery % uint64(len(subs))) // one handler per sampled publish, in turn
	}
	for i := 0; i < len(subs); i++ {
		var p *recovered
		if i, p = callSync(ctx, subs, i, ev, timed, out); p != nil {
			if p.reporting {
				out[i], escaped = failed, cmp.Or(escaped, p)
				continue
			}
			out[i], p = guard(func() outcome {
				return subs[i].syncFailed(ctx, ev, p.stack, &panicError{value: p.value})
			})
			escaped = cmp.Or(escaped, p)
		}
	}
	return escaped
}

type recovered struct {
	value     any
	stack     []byte
	reporting bool // not the handler's panic: it came from reporting a failure (see guard)
}

// callSync calls the handlers of subs from i on, until one panics: it
// returns the index it stopped at and, if it stopped early, the panic.
func callSync[T any](ctx context.Context, subs []*subscriber[T], i int, ev *Event[T], timed int, out []outcome) (at int, p *recovered) {
	reporting := false
	defer func() {
		if r := recover(); r != nil {
			p = &recovered{value: r, stack: debug.Stack(), reporting: reporting}
		}
	}()
	e := *ev // handler(ctx, *ev) would copy *ev aside, then again into the call's arguments
	for at = i; at < len(subs); at++ {
		s := subs[at]
		if at == timed {
			reporting = true // callTimed recovers the handler's own panics
			out[at], _ = s.callTimed(ctx, ev)
			reporting = false
			continue
		}
		if g := s.gate.Load(); g != 0 {
			if g&gateReplaying != 0 {
				s.awaitReplay(ctx)
			}
			if s.gate.Load()&gateClosed != 0 {
				out[at] = skipped
				continue
			}
		}
		if err := s.handler(ctx, e); err != nil {
			reporting = true
			out[at] = s.syncFailed(ctx, ev, nil, err)
			reporting = false
		}
	}
	return at, nil
}

// guard runs a step of a Sync delivery that recovers its handler's panics
// itself, and recovers what panic still gets out: the bus recovers those of
// the user's functions a failure calls (the error handler, Retry's backoff)
// too, but not those of the logger (WithLogger) as it reports the failure,
// there being nowhere left to report them. The publisher raises that panic
// again once the publish is finished, so that Close does not wait for a
// publish that never ends; the delivery counts as failed.
func guard(step func() outcome) (o outcome, p *recovered) {
	defer func() {
		if r := recover(); r != nil {
			o, p = failed, &recovered{value: r, stack: debug.Stack(), reporting: true}
		}
	}()
	return step(), nil
}

// syncFailed goes on after the first attempt of a Sync delivery failed.
func (s *subscriber[T]) syncFailed(ctx context.Context, ev *Event[T], stack []byte, err error) outcome {
	if s.retry(ctx, ev, s.failure(ev, 1, stack, err)) != nil {
		return failed
	}
	return handled
}

// callTimed delivers ev to a Sync handler on its own, timing the call, for
// PublishWait, Replay and the timed publishes of publishSync; the caller
// counts the call.
func (s *subscriber[T]) callTimed(ctx context.Context, ev *Event[T]) (outcome, error) {
	if s.gate.Load()&gateReplaying != 0 {
		s.awaitReplay(ctx)
	}
	if s.gate.Load()&gateClosed != 0 {
		return skipped, nil
	}
	if err := s.deliver(ctx, ev, true); err != nil {
		return failed, err
	}
	return handled, nil
}

// countSync counts the Sync calls of a publish for subscriptions whose
// counts are not under a topic's lock (SubscribeAll): each under its own lock.
func countSync[T any](subs []*subscriber[T], out []outcome) {
	for i, s := range subs {
		if out[i] != skipped {
			s.countCall(out[i] == failed)
		}
	}
}

// replaySync hands a new Sync subscription the latest events of its
// topics, then lets the publishers that reached it meanwhile go on (they
// wait in awaitReplay). The handler gets a ctx that marks the replay, so
// that a publish it makes with that ctx to its own topic reaches it at
// once instead of waiting for the replay to end.
func (s *subscriber[T]) replaySync(evs []Event[T]) {
	defer func() {
		s.gate.And(^int64(gateReplaying))
		close(s.replayed)
	}()
	if testHookReplay != nil {
		testHookReplay()
	}
	ctx := context.WithValue(context.Background(), replayKey{}, s.Subscription)
	for i := range evs {
		_ = s.deliverSync(ctx, &evs[i]) // failures are reported by deliver
	}
}

// testHookReplay, when set by a test, runs before a Sync Replay is
// delivered: where a publish could overtake it.
var testHookReplay func()

// replayKey marks the ctx of a Sync Replay's handler calls with the
// subscription being replayed to.
type replayKey struct{}

// awaitReplay waits, in a publisher about to call a Sync handler whose
// gate has gateReplaying set, until the subscription's replay has been
// delivered; a publish from within that replay does not wait for itself.
func (s *subscriber[T]) awaitReplay(ctx context.Context) {
	if ctx.Value(replayKey{}) == s.Subscription {
		return
	}
	<-s.replayed
}

// deliverSync delivers ev to a Sync handler outside any publish (Replay),
// timing the call, and counts it.
func (s *subscriber[T]) deliverSync(ctx context.Context, ev *Event[T]) error {
	o, err := s.callTimed(ctx, ev)
	if o != skipped {
		s.countCall(o == failed)
	}
	return err
}

// sampled says whether handler call number n (from 1), or, for Sync
// handlers, publish number n of the topic, is timed: reading the clock twice
// costs more than a small handler, so the first calls are, for quiet
// subscriptions to have figures, and then one in sampleEvery (for Sync
// handlers, one handler of each such publish, in turn).
func sampled(n uint64) bool { return n <= 16 || n%sampleEvery == 0 }

// sampleEvery is how often a call is timed after the first 16: rarely
// enough that the two clock reads of a timed call vanish in the average,
// often enough that a busy subscription has thousands of samples a second.
const sampleEvery = 256

// deliver hands ev to the handler, retrying as Retry allows, and
// dead-letters it after the last failed attempt. It returns nil or the last
// attempt's *HandlerError. timed says whether to time the first attempt.
func (s *subscriber[T]) deliver(ctx context.Context, ev *Event[T], timed bool) error {
	he := s.attempt(ctx, ev, 1, timed)
	if he == nil {
		return nil
	}
	return s.retry(ctx, ev, he)
}

// retry goes on after a failed attempt: more attempts as Retry allows, then
// the dead letter.
func (s *subscriber[T]) retry(ctx context.Context, ev *Event[T], he *HandlerError) error {
	for attempt := he.Attempt; ; {
		if attempt >= s.maxAttempts {
			s.deadLetter(ctx, ev, he)
			return he
		}
		if s.gate.Load()&gateClosed != 0 {
			return he // unsubscribed: no more attempts, nothing owed
		}
		if !s.pause(ctx, attempt) {
			s.count(Counts{Undelivered: 1}) // Close gave up, or the publisher's ctx ended
			return he
		}
		s.count(Counts{Retries: 1})
		attempt++
		if he = s.attempt(ctx, ev, attempt, false); he == nil {
			return nil
		}
	}
}

// pause waits the backoff after a failed attempt; false if the wait was cut
// short by Close giving up, by ctx, or by Unsubscribe.
func (s *subscriber[T]) pause(ctx context.Context, attempt int) bool {
	if s.backoff == nil {
		return ctx.Err() == nil
	}
	d := s.backoffAfter(attempt)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.bus.handlerCtx.Done():
	case <-s.gone:
	}
	return false
}

// backoffAfter returns the Retry backoff after failed attempt number
// attempt. If the backoff function panics, the panic is logged and the next
// attempt follows at once: a panic here would otherwise escape from the
// delivery, which for a Sync handler is the publisher's Publish.
func (s *subscriber[T]) backoffAfter(attempt int) (d time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			d = 0
			s.bus.logger.LogAttrs(context.Background(), slog.LevelError, "eventbus: Retry backoff function panicked; retrying at once",
				slog.String("subscriber", s.name), slog.String("topic", s.topic), slog.Int("attempt", attempt),
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		}
	}()
	return s.backoff(attempt)
}

// attempt calls the handler once, timing it if asked, and reports a failure.
func (s *subscriber[T]) attempt(ctx context.Context, ev *Event[T], n int, timed bool) *HandlerError {
	var start time.Time
	if timed {
		start = time.Now()
	}
	stack, err := call(ctx, s.handler, ev)
	if timed {
		s.latency.Record(time.Since(start))
	}
	if err == nil {
		return nil
	}
	return s.failure(ev, n, stack, err)
}

// failure makes, counts and reports the HandlerError of failed attempt n.
func (s *subscriber[T]) failure(ev *Event[T], n int, stack []byte, err error) *HandlerError {
	he := &HandlerError{
		Topic: ev.Topic, EventID: ev.ID, Subscriber: s.name, Attempt: n,
		Err: err, Panic: stack != nil, Stack: stack,
	}
	s.bus.report(s.Subscription, he, n < s.maxAttempts)
	return he
}

// deadLetter publishes a DeadLetter for an event whose attempts all failed.
func (s *subscriber[T]) deadLetter(ctx context.Context, ev *Event[T], he *HandlerError) {
	if ev.Topic == DeadLetterTopic {
		s.bus.logger.LogAttrs(ctx, slog.LevelError, "eventbus: dead-letter handler failed; the dead letter is not dead-lettered again",
			slog.String("subscriber", s.name), slog.String("event_id", ev.ID.String()), slog.Any("error", he.Err))
		return
	}
	if err := s.sendLetter(s.letter(ev, he)); err != nil {
		s.bus.logger.LogAttrs(ctx, slog.LevelError, "eventbus: dead letter lost",
			slog.String("topic", ev.Topic), slog.String("event_id", ev.ID.String()),
			slog.String("subscriber", s.name), slog.Any("error", err))
	}
}

// letter is the dead letter of ev, whose last attempt failed with he.
func (s *subscriber[T]) letter(ev *Event[T], he *HandlerError) *DeadLetter {
	return &DeadLetter{
		Topic: ev.Topic, EventID: ev.ID, Time: ev.Time, Subscriber: s.name,
		Attempts: he.Attempt, Error: he.Err.Error(), Payload: ev.Payload, Metadata: ev.Metadata,
	}
}

// sendLetter publishes dl and counts it.
func (s *subscriber[T]) sendLetter(dl *DeadLetter) error {
	if err := s.bus.publishDeadLetter(s.bus.handlerCtx, *dl); err != nil {
		return err
	}
	s.count(Counts{DeadLettered: 1})
	return nil
}

// call runs h, turning a panic into an error with the stack. Unlike errgroup,
// which re-panics in Wait, the bus recovers: a trading system must not go
// down because one consumer has a bug, and the failure is still counted,
// logged and reported.
func call[T any](ctx context.Context, h Handler[T], ev *Event[T]) (stack []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			stack, err = debug.Stack(), &panicError{value: r}
		}
	}()
	return nil, h(ctx, *ev)
}

// report counts, logs and hands on a failed handler call: at Warn when
// another attempt follows, at Error when it was the last.
func (b *Bus) report(s *Subscription, he *HandlerError, retrying bool) {
	d := Counts{Errors: 1}
	if he.Panic {
		d.Panics = 1
	}
	s.count(d)
	attrs := []slog.Attr{
		slog.String("topic", he.Topic),
		slog.String("event_id", he.EventID.String()),
		slog.String("subscriber", he.Subscriber),
		slog.Int("attempt", he.Attempt),
		slog.Any("error", he.Err),
	}
	if he.Panic {
		attrs = append(attrs, slog.String("stack", string(he.Stack)))
	}
	level, msg := slog.LevelError, "eventbus: handler failed"
	if retrying {
		level, msg = slog.LevelWarn, "eventbus: handler failed; retrying"
	}
	b.logger.LogAttrs(context.Background(), level, msg, attrs...)
	if b.cfg.errorHandler != nil {
		b.callErrorHandler(he)
	}
}

// callErrorHandler runs the WithErrorHandler function. A panic in it is
// logged, not passed on: it would otherwise escape from the delivery that
// failed, which for a Sync handler is the publisher's Publish, and leave
// Close waiting for that publish.
func (b *Bus) callErrorHandler(he *HandlerError) {
	defer func() {
		if r := recover(); r != nil {
			b.logger.LogAttrs(context.Background(), slog.LevelError, "eventbus: error handler panicked",
				slog.String("topic", he.Topic), slog.String("event_id", he.EventID.String()),
				slog.String("subscriber", he.Subscriber), slog.Any("panic", r),
				slog.String("stack", string(debug.Stack())))
		}
	}()
	b.cfg.errorHandler(he)
}

// waiter collects the outcome of one PublishWait.
type waiter struct {
	pending  atomic.Int64 // deliveries to wait for, plus one held by the publisher
	done     chan struct{}
	selfLane *lane // the caller's own lane, if only the caller drains it
	mu       sync.Mutex
	errs     []error
}

func newWaiter(self *worker) *waiter {
	w := &waiter{done: make(chan struct{})}
	if self != nil && self.lane != nil && self.lane.workers == 1 {
		w.selfLane = self.lane
	}
	w.pending.Store(1)
	return w
}

func (w *waiter) add(n int) { w.pending.Add(int64(n)) }

func (w *waiter) fail(err error) {
	w.mu.Lock()
	w.errs = append(w.errs, err)
	w.mu.Unlock()
}

func (w *waiter) finish(err error) {
	if err != nil {
		w.fail(err)
	}
	if w.pending.Add(-1) == 0 {
		close(w.done)
	}
}

func (w *waiter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.errs...)
}

// subList is an immutable snapshot of the subscriptions of a topic (or of
// SubscribeAll); publishers read it without a lock. ledger counts the calls
// of a topic's Sync subscriptions made by the publishes that took this
// snapshot; a new one comes with every change to sync.
type subList[T any] struct {
	sync, async []*subscriber[T]
	ledger      *syncLedger
	// allShared: every async subscription is one lane in the topic's ring,
	// with its group there, so that a publish that finds room in each
	// writes the ring once and nothing else (see Topic.offer).
	allShared bool
}

func (l *subList[T]) setAllShared() *subList[T] {
	l.allShared = true
	for _, s := range l.async {
		if len(s.lanes) != 1 || !s.lanes[0].shared || s.lanes[0].group == nil {
			l.allShared = false
			break
		}
	}
	return l
}

func (l *subList[T]) empty() bool { return l == nil || len(l.sync)+len(l.async) == 0 }

func (l *subList[T]) with(s *subscriber[T]) *subList[T] {
	n := &subList[T]{}
	if l != nil {
		n.sync, n.async, n.ledger = l.sync, l.async, l.ledger
	}
	if s.sync {
		n.sync = append(n.sync[:len(n.sync):len(n.sync)], s)
		n.newLedger()
	} else {
		n.async = append(n.async[:len(n.async):len(n.async)], s)
	}
	return n.setAllShared()
}

func (l *subList[T]) without(s *subscriber[T]) *subList[T] {
	n := &subList[T]{ledger: l.ledger}
	for _, x := range l.sync {
		if x != s {
			n.sync = append(n.sync, x)
		}
	}
	for _, x := range l.async {
		if x != s {
			n.async = append(n.async, x)
		}
	}
	if s.sync {
		n.newLedger()
	}
	return n.setAllShared()
}

// newLedger replaces the ledger n took over from the list it replaces,
// whose Sync subscriptions were not the same. The caller holds the
// topic's lock. SubscribeAll's list has none: its Sync subscriptions count
// their calls under locks of their own (countSync).
func (n *subList[T]) newLedger() {
	if n.ledger != nil {
		n.ledger.close()
		n.ledger = nil
	}
	if len(n.sync) == 0 || n.sync[0].topic == "*" {
		return
	}
	members := make([]*Subscription, len(n.sync))
	for i, s := range n.sync {
		members[i] = s.Subscription
	}
	n.ledger = openLedger(members)
}

func (l *subList[T]) each(f func(*Subscription)) {
	if l == nil {
		return
	}
	for _, s := range l.sync {
		f(s.Subscription)
	}
	for _, s := range l.async {
		f(s.Subscription)
	}
}
