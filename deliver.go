package eventbus

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quantumtrader/eventbus/internal/queue"
)

// subscriber is the typed half of a Subscription: the handler, its buffers,
// and the list it belongs to (a topic's, or the bus's SubscribeAll list).
type subscriber[T any] struct {
	*Subscription
	handler Handler[T]
	qs      []*queue.Queue[item[T]] // one per lane; nil for Sync
	key     func(T) string          // PartitionBy; nil for one lane
	qpolicy queue.Policy
	list    *atomic.Pointer[subList[T]] // copy-on-write, replaced under listMu
	listMu  sync.Locker
	// held counts events the workers have taken off the queues and not yet
	// started, so that statistics and a Close that gives up see them.
	held atomic.Int64
}

// item is one queued delivery; w is set for PublishWait.
type item[T any] struct {
	ev Event[T]
	w  *waiter
}

var partitionSeed = maphash.MakeSeed()

func newSubscriber[T any](b *Bus, topic string, h Handler[T], cfg subConfig, where string) (*subscriber[T], error) {
	s := &subscriber[T]{
		Subscription: &Subscription{
			bus: b, topic: topic, where: where, name: cfg.name,
			sync: cfg.sync, concurrency: cfg.concurrency, policy: cfg.policy,
			maxAttempts: cfg.maxAttempts, backoff: cfg.backoff, replay: cfg.replay,
			gone: make(chan struct{}), done: make(chan struct{}),
		},
		handler: h,
		qpolicy: queue.Policy(cfg.policy),
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
		s.syncSlot.sub = s.Subscription
		close(s.done)
		return s, nil
	}
	lanes, perLane, size := 1, cfg.concurrency, cfg.queueSize
	if s.key != nil && cfg.concurrency > 1 {
		lanes, perLane, size = cfg.concurrency, 1, (cfg.queueSize+cfg.concurrency-1)/cfg.concurrency
	}
	for i := range lanes {
		q := queue.New[item[T]](size)
		l := &lane{sub: s.Subscription, index: i, full: q.Full}
		for range perLane {
			l.workers = append(l.workers, &worker{sub: s.Subscription, lane: l})
		}
		s.qs = append(s.qs, q)
		s.lanes = append(s.lanes, l)
	}
	return s, nil
}

// laneOf picks the partition of an event.
func (s *subscriber[T]) laneOf(ev *Event[T]) int {
	if len(s.qs) < 2 {
		return 0
	}
	return int(maphash.String(partitionSeed, s.key(ev.Payload)) % uint64(len(s.qs)))
}

// start launches the workers in the bus's errgroup.
func (s *subscriber[T]) start(ctxFor func(*worker) context.Context) {
	n := 0
	for _, l := range s.lanes {
		n += len(l.workers)
	}
	s.running.Store(int32(n))
	for i, l := range s.lanes {
		for _, w := range l.workers {
			ctx := ctxFor(w)
			s.bus.workers.Go(func() error {
				defer s.exit()
				s.run(ctx, w, s.qs[i])
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

func (s *subscriber[T]) closeQueue() {
	for _, q := range s.qs {
		q.Close()
	}
}

// discard empties the queues. Their events count as undelivered when the
// bus gave up on them (a Close past its deadline), not when the subscriber
// left.
func (s *subscriber[T]) discard(undelivered bool) {
	for _, q := range s.qs {
		for _, it := range q.Discard(nil) {
			s.abandon(&it, undelivered)
		}
	}
	if undelivered {
		// The workers skip the events they hold once held is zero.
		s.c.undelivered.Add(uint64(s.held.Swap(0)))
	}
}

// take claims the next held event for a worker; false means Close gave up
// on it (and counted it) already.
func (s *subscriber[T]) take() bool {
	for {
		h := s.held.Load()
		if h == 0 {
			return false
		}
		if s.held.CompareAndSwap(h, h-1) {
			return true
		}
	}
}

func (s *subscriber[T]) abandon(it *item[T], undelivered bool) {
	var err error
	if undelivered {
		s.c.undelivered.Add(1)
		err = s.abandoned(&it.ev)
	}
	if it.w != nil {
		it.w.finish(err)
	}
}

func (s *subscriber[T]) abandoned(ev *Event[T]) error {
	return fmt.Errorf("eventbus: %s: event %s abandoned: %w", s.Subscription, ev.ID, ErrClosed)
}

func (s *subscriber[T]) queueLen() (n, c, hw int) {
	for _, q := range s.qs {
		n, c, hw = n+q.Len(), c+q.Cap(), hw+q.HighWater()
	}
	return n + int(s.held.Load()), c, hw
}

// run is one worker goroutine: it takes events off its lane's queue in
// batches and handles them in order until the queue is closed and empty.
func (s *subscriber[T]) run(ctx context.Context, w *worker, q *queue.Queue[item[T]]) {
	batchSize := 64
	if len(w.lane.workers) > 1 {
		batchSize = 1 // leave the rest to the lane's other workers
	}
	batch := make([]item[T], 0, batchSize)
	for {
		var ok bool
		batch, ok = q.Pop(batch[:0], batchSize)
		if !ok {
			return
		}
		s.held.Add(int64(len(batch)))
		for i := range batch {
			it := &batch[i]
			switch {
			case !s.take():
				if it.w != nil {
					it.w.finish(s.abandoned(&it.ev))
				}
			case s.bus.aborted.Load():
				s.abandon(it, true)
			case !s.enter():
				s.abandon(it, false)
			default:
				err := s.deliver(ctx, w, &it.ev)
				s.leave()
				if it.w != nil {
					it.w.finish(err)
				}
			}
			*it = item[T]{}
		}
	}
}

// deliverSync runs a Sync handler in the caller's goroutine.
func (s *subscriber[T]) deliverSync(ctx context.Context, ev *Event[T]) error {
	if !s.enter() {
		return nil
	}
	defer s.leave()
	return s.deliver(ctx, &s.syncSlot, ev)
}

// deliver hands ev to the handler, retrying as Retry allows, and
// dead-letters it after the last failed attempt. The caller holds the gate.
// It returns nil or the last attempt's *HandlerError.
func (s *subscriber[T]) deliver(ctx context.Context, w *worker, ev *Event[T]) error {
	s.c.dispatched.Add(1)
	for attempt := 1; ; attempt++ {
		he := s.attempt(ctx, w, ev, attempt)
		if he == nil {
			s.c.delivered.Add(1)
			return nil
		}
		if attempt >= s.maxAttempts {
			s.deadLetter(ctx, ev, he)
			return he
		}
		if s.gate.Load()&gateClosed != 0 {
			return he // unsubscribed: no more attempts
		}
		if !s.pause(ctx, attempt) {
			if s.bus.aborted.Load() {
				s.c.undelivered.Add(1)
			}
			return he
		}
		s.c.retries.Add(1)
	}
}

// pause waits the backoff after a failed attempt; false if the wait was cut
// short by Close giving up, by ctx, or by Unsubscribe.
func (s *subscriber[T]) pause(ctx context.Context, attempt int) bool {
	if s.backoff == nil {
		return ctx.Err() == nil
	}
	d := s.backoff(attempt)
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

// attempt calls the handler once and reports a failure.
func (s *subscriber[T]) attempt(ctx context.Context, w *worker, ev *Event[T], attempt int) *HandlerError {
	ticket, watched := w.begin()
	var start time.Time
	sampled := ticket%latencySampling == 0
	if sampled {
		start = time.Now()
	}
	stack, err := call(ctx, s.handler, ev)
	if sampled {
		s.latency.Record(time.Since(start))
	}
	if watched {
		w.end()
	}
	if err == nil {
		return nil
	}
	he := &HandlerError{
		Topic: ev.Topic, EventID: ev.ID, Subscriber: s.name, Attempt: attempt,
		Err: err, Panic: stack != nil, Stack: stack,
	}
	s.bus.report(s.Subscription, he)
	return he
}

// latencySampling is how many handler calls share one latency measurement:
// reading the clock twice costs more than a small handler.
const latencySampling = 8

// deadLetter publishes a DeadLetter for an event whose attempts all failed.
func (s *subscriber[T]) deadLetter(ctx context.Context, ev *Event[T], he *HandlerError) {
	if ev.Topic == DeadLetterTopic {
		s.bus.logger.LogAttrs(ctx, slog.LevelError, "eventbus: dead-letter handler failed; the dead letter is not dead-lettered again",
			slog.String("subscriber", s.name), slog.String("event_id", ev.ID.String()), slog.Any("error", he.Err))
		return
	}
	dl := DeadLetter{
		Topic: ev.Topic, EventID: ev.ID, Time: ev.Time, Subscriber: s.name,
		Attempts: he.Attempt, Error: he.Err.Error(), Payload: ev.Payload, Metadata: ev.Metadata,
	}
	if err := s.bus.publishDeadLetter(s.bus.handlerCtx, dl); err != nil {
		s.bus.logger.LogAttrs(ctx, slog.LevelError, "eventbus: dead letter lost",
			slog.String("topic", ev.Topic), slog.String("event_id", ev.ID.String()),
			slog.String("subscriber", s.name), slog.Any("error", err))
		return
	}
	s.c.deadLettered.Add(1)
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

// report counts, logs and hands on a failed handler call.
func (b *Bus) report(s *Subscription, he *HandlerError) {
	s.c.errors.Add(1)
	attrs := []slog.Attr{
		slog.String("topic", he.Topic),
		slog.String("event_id", he.EventID.String()),
		slog.String("subscriber", he.Subscriber),
		slog.Int("attempt", he.Attempt),
		slog.Any("error", he.Err),
	}
	if he.Panic {
		s.c.panics.Add(1)
		attrs = append(attrs, slog.String("stack", string(he.Stack)))
	}
	b.logger.LogAttrs(context.Background(), slog.LevelError, "eventbus: handler failed", attrs...)
	if b.cfg.errorHandler != nil {
		b.cfg.errorHandler(he)
	}
}

// waiter collects the outcome of one PublishWait.
type waiter struct {
	pending atomic.Int64 // deliveries to wait for, plus one held by the publisher
	done    chan struct{}
	self    *worker // the worker whose handler called PublishWait, or nil
	mu      sync.Mutex
	errs    []error
}

func newWaiter(self *worker) *waiter {
	w := &waiter{done: make(chan struct{}), self: self}
	w.pending.Store(1)
	return w
}

func (w *waiter) add() { w.pending.Add(1) }

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
// SubscribeAll); publishers read it without a lock.
type subList[T any] struct {
	sync, async []*subscriber[T]
}

func (l *subList[T]) empty() bool { return l == nil || len(l.sync)+len(l.async) == 0 }

func (l *subList[T]) with(s *subscriber[T]) *subList[T] {
	n := &subList[T]{}
	if l != nil {
		n.sync, n.async = l.sync, l.async
	}
	if s.sync {
		n.sync = append(n.sync[:len(n.sync):len(n.sync)], s)
	} else {
		n.async = append(n.async[:len(n.async):len(n.async)], s)
	}
	return n
}

func (l *subList[T]) without(s *subscriber[T]) *subList[T] {
	n := &subList[T]{}
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
	return n
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
