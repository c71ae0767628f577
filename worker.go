package eventbus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

// lane is one buffer of an asynchronous subscription and the workers that
// drain it: a single lane with Concurrency(n) workers, or, with PartitionBy,
// n lanes of one worker each.
type lane struct {
	sub     *Subscription
	index   int
	workers []*worker
	full    func() bool // a Block publisher would have to wait for room
}

func (l *lane) String() string {
	if len(l.sub.lanes) > 1 {
		return fmt.Sprintf("%s partition %d", l.sub, l.index)
	}
	return l.sub.String()
}

// worker is one goroutine of an asynchronous subscription, or the single
// stall-watching slot of a Sync one.
type worker struct {
	sub  *Subscription
	lane *lane // nil for a Sync subscription's slot

	// active is the ticket of the handler call under way, 0 when idle; the
	// stall watcher compares it between two looks.
	active  atomic.Uint64
	calls   uint64        // tickets of an asynchronous worker (one goroutine writes it)
	tickets atomic.Uint64 // tickets of a Sync slot, shared by publishers

	// waiting is the full lane this worker's handler is blocked publishing
	// into, for deadlock detection.
	waiting atomic.Pointer[lane]
}

// begin marks a handler call as under way. A Sync slot watches one call at
// a time; concurrent calls of the same Sync handler go unwatched.
func (w *worker) begin() (ticket uint64, watched bool) {
	if w.lane != nil {
		w.calls++
		w.active.Store(w.calls)
		return w.calls, true
	}
	t := w.tickets.Add(1)
	return t, w.active.CompareAndSwap(0, t)
}

func (w *worker) end() { w.active.Store(0) }

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
	for _, w := range l.workers {
		next := w.waiting.Load()
		if next == nil || !stuck(next, onPath, path) {
			return false // this worker is free, or will be
		}
	}
	return true
}

// watchStalls runs in the bus's errgroup from the first subscription until
// Close, and logs every handler call that runs longer than the stall
// timeout, once. It reads only the tickets the workers publish, so the
// delivery path pays no clock reads for it.
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
	ticket   uint64
	since    time.Time // when the watcher first saw the call
	reported bool
}

func (b *Bus) scanStalls(now time.Time, seen map[*worker]stall) map[*worker]stall {
	next := make(map[*worker]stall, len(seen))
	for _, s := range b.liveList() {
		for _, w := range s.allWorkers() {
			ticket := w.active.Load()
			if ticket == 0 {
				continue
			}
			st, ok := seen[w]
			if !ok || st.ticket != ticket {
				st = stall{ticket: ticket, since: now}
			} else if !st.reported && now.Sub(st.since) >= b.cfg.stallTimeout {
				st.reported = true
				b.logger.LogAttrs(context.Background(), slog.LevelWarn, "eventbus: handler stalled",
					slog.String("subscriber", s.name), slog.String("topic", s.topic),
					slog.String("subscribed_at", s.where), slog.Duration("running_for_at_least", now.Sub(st.since)))
			}
			next[w] = st
		}
	}
	return next
}
