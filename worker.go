package eventbus

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quantumtrader/eventbus/internal/ring"
)

// lane is one buffer of an asynchronous subscription and the workers that
// drain it: a single lane with Concurrency(n) workers, or, with PartitionBy,
// n lanes of one worker each.
type lane struct {
	sub     *Subscription
	index   int
	size    int // capacity
	workers int
	batch   int
	ws      []*worker
	full    func() bool // a Block publisher would have to wait; safe from any goroutine
	length  func() (n, cap, hw int)
}

func (l *lane) String() string {
	if len(l.sub.lanes) > 1 {
		return fmt.Sprintf("%s partition %d", l.sub, l.index)
	}
	return l.sub.String()
}

// worker is one goroutine of an asynchronous subscription.
type worker struct {
	sub  *Subscription
	lane *lane

	// Counts of the worker's own goroutine, published to Stats by flush:
	// every run of events, before a PublishWait is answered, before it parks
	// and when it exits. An atomic add per event would cost more than the
	// rest of the delivery.
	dispatched, delivered uint64
	pub                   struct{ dispatched, delivered atomic.Uint64 }

	// The ring worker's progress, for the stall watcher.
	progress func() uint64
	asleep   func() bool

	// waiting is the full lane this worker's handler is blocked publishing
	// into, for deadlock detection.
	waiting atomic.Pointer[lane]
}

func (w *worker) flush() {
	w.pub.dispatched.Store(w.dispatched)
	w.pub.delivered.Store(w.delivered)
}

// callerWorker returns the worker whose handler is running in ctx, if any.
func callerWorker(ctx context.Context) *worker {
	w, _ := ctx.Value(workerKey{}).(*worker)
	return w
}

// deadlock reports whether waiting for room in l can never end: every
// worker that drains it is itself waiting, directly or through others, for
// room in a lane that only the waiting workers could drain. The caller marks
// its own worker as waiting on l before asking, so that of two handlers
// entering a cycle at once at least one sees it (each stores, then loads).
func deadlock(l *lane) error {
	var path []*lane
	if !stuck(l, make(map[*lane]bool), &path) {
		return nil
	}
	names := make([]string, len(path))
	for i, p := range path {
		names[i] = p.String()
	}
	return fmt.Errorf("%w: %w: waiting for room in the buffer of %s, drained only by handlers that are themselves waiting to publish",
		ErrQueueFull, ErrDeadlock, strings.Join(names, ", whose handler waits for "))
}

func stuck(l *lane, onPath map[*lane]bool, path *[]*lane) bool {
	if onPath[l] {
		return true // a cycle back to a lane we are trying to drain
	}
	if !l.full() {
		return false // whoever waits on it is about to get room
	}
	onPath[l] = true
	*path = append(*path, l)
	for _, w := range l.ws {
		next := w.waiting.Load()
		if next == nil || !stuck(next, onPath, path) {
			return false // this worker is free, or will be
		}
	}
	return true
}

// watchStalls runs in the bus's errgroup from the first subscription until
// Close, and logs every handler call that runs longer than the stall
// timeout, once. It reads only progress the workers publish anyway, so the
// delivery path pays no clock read for it.
func (b *Bus) watchStalls() {
	tick := time.NewTicker(max(b.cfg.stallTimeout/4, time.Millisecond))
	defer tick.Stop()
	seen := make(map[*worker]stall)
	for {
		select {
		case <-b.stopWatch:
			return
		case now := <-tick.C:
			seen = b.scanStalls(now, seen)
		}
	}
}

type stall struct {
	progress uint64
	since    time.Time // when the watcher first saw this progress
	reported bool
}

// scanStalls looks at every worker that is not parked: if its progress has
// not moved for the stall timeout, a handler is stuck. (A Sync handler runs
// in its publisher's goroutine; a stuck one shows as a stuck publisher.)
func (b *Bus) scanStalls(now time.Time, seen map[*worker]stall) map[*worker]stall {
	next := make(map[*worker]stall, len(seen))
	look := func(key *worker, s *Subscription, progress uint64) {
		st, ok := seen[key]
		if !ok || st.progress != progress {
			st = stall{progress: progress, since: now}
		} else if !st.reported && now.Sub(st.since) >= b.cfg.stallTimeout {
			st.reported = true
			b.logger.LogAttrs(context.Background(), slog.LevelWarn, "eventbus: handler stalled",
				slog.String("subscriber", s.name), slog.String("topic", s.topic),
				slog.String("subscribed_at", s.where), slog.Duration("running_for_at_least", now.Sub(st.since)))
		}
		next[key] = st
	}
	for _, s := range b.liveList() {
		for _, l := range s.lanes {
			for _, w := range l.ws {
				if !w.asleep() {
					look(w, s, w.progress())
				}
			}
		}
	}
	return next
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
