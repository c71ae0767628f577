package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/quantumtrader/eventbus/internal/queue"
)

// subscriber is the typed half of a Subscription: the handler, its buffer,
// and the list it belongs to (a topic's, or the bus's SubscribeAll list).
type subscriber[T any] struct {
	*Subscription
	handler Handler[T]
	q       *queue.Queue[item[T]] // nil for Sync
	qpolicy queue.Policy
	list    *atomic.Pointer[subList[T]] // copy-on-write, replaced under listMu
	listMu  sync.Locker
	// held counts events the workers have taken off the queue and not yet
	// started, so that statistics and a Close that gives up see them.
	held atomic.Int64
}

// item is one queued delivery; w is set for PublishWait.
type item[T any] struct {
	ev Event[T]
	w  *waiter
}

func newSubscriber[T any](b *Bus, topic string, h Handler[T], cfg subConfig, where string) *subscriber[T] {
	s := &subscriber[T]{
		Subscription: &Subscription{
			bus: b, topic: topic, where: where, name: cfg.name,
			sync: cfg.sync, concurrency: cfg.concurrency, policy: cfg.policy,
		},
		handler: h,
		qpolicy: queue.Policy(cfg.policy),
	}
	if s.name == "" {
		s.name = funcName(h)
	}
	if !cfg.sync {
		s.q = queue.New[item[T]](cfg.queueSize)
	}
	s.typed = s
	return s
}

func (s *subscriber[T]) detach() {
	s.listMu.Lock()
	s.list.Store(s.list.Load().without(s))
	s.listMu.Unlock()
}

func (s *subscriber[T]) closeQueue() {
	if s.q != nil {
		s.q.Close()
	}
}

// discard empties the queue. Its events count as undelivered when the bus
// gave up on them (a Close past its deadline), not when the subscriber left.
func (s *subscriber[T]) discard(undelivered bool) {
	if s.q == nil {
		return
	}
	for _, it := range s.q.Discard(nil) {
		s.abandon(&it, undelivered)
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
	if s.q == nil {
		return 0, 0, 0
	}
	return s.q.Len() + int(s.held.Load()), s.q.Cap(), s.q.HighWater()
}

// run is one worker goroutine of an asynchronous subscription: it takes
// events off the buffer in batches and handles them in order until the buffer
// is closed and empty.
func (s *subscriber[T]) run(ctx context.Context) {
	batchSize := 64
	if s.concurrency > 1 {
		batchSize = 1 // leave the rest for the other workers
	}
	batch := make([]item[T], 0, batchSize)
	for {
		var ok bool
		batch, ok = s.q.Pop(batch[:0], batchSize)
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
				err := s.handle(ctx, &it.ev)
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
	return s.handle(ctx, ev)
}

// handle calls the handler once and accounts for the outcome.
func (s *subscriber[T]) handle(ctx context.Context, ev *Event[T]) error {
	s.c.dispatched.Add(1)
	stack, err := call(ctx, s.handler, ev)
	if err == nil {
		s.c.delivered.Add(1)
		return nil
	}
	he := &HandlerError{
		Topic: ev.Topic, EventID: ev.ID, Subscriber: s.name, Attempt: 1,
		Err: err, Panic: stack != nil, Stack: stack,
	}
	s.bus.report(s.Subscription, he)
	return he
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
	self    *Subscription // the subscription whose handler called PublishWait, or nil
	mu      sync.Mutex
	errs    []error
}

func newWaiter(self *Subscription) *waiter {
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
