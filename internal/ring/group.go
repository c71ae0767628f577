package ring

import (
	"runtime"
	"sync/atomic"
)

// Group is one reader of the ring: a subscription lane.
type Group[E any] struct {
	ring  *Ring[E]
	cap   uint64
	batch int

	_    pad
	next atomic.Uint64 // the next sequence to claim
	_    pad
	gone atomic.Bool // removed: workers stop

	// producer-owned
	low   uint64       // a lower bound of the oldest sequence the group still holds
	high  atomic.Int64 // the depth the producer saw when it had to look
	works []*Worker[E]
}

// Add makes a group that reads the events put from now on, at most cap of
// them waiting, with the given number of workers, each taking runs of up to
// batch events. cap plus workers times batch must not exceed the ring's size.
func (r *Ring[E]) Add(cap, workers, batch int) *Group[E] {
	if cap < 1 || workers < 1 || batch < 1 || cap > len(r.slots) {
		panic("ring: group does not fit the ring")
	}
	t := r.tail.Load()
	g := &Group[E]{ring: r, cap: uint64(cap), batch: batch, low: t}
	g.next.Store(t)
	for range workers {
		w := &Worker[E]{g: g, wake: make(chan struct{}, 1), buf: make([]E, batch), start: t, pos: t, runEnd: t}
		w.cur.Store(t)
		w.end.Store(t)
		g.works = append(g.works, w)
	}
	r.groups = append(append([]*Group[E](nil), r.groups...), g)
	r.roomUntil = 0
	r.listWorkers()
	return g
}

// Full reports whether g has no room now. Unlike Room it is safe to call
// from any goroutine, and may be stale by the time it returns.
func (g *Group[E]) Full() bool { return g.Len() >= int(g.cap) }

// Remove stops a group: its workers' Next returns Done once they finish the
// event they are on, and the producer no longer waits for it. It waits for
// workers still copying slots, which takes nanoseconds. Call Discard first
// to take what the group had not read.
func (r *Ring[E]) Remove(g *Group[E]) {
	g.gone.Store(true)
	for _, w := range g.works {
		for w.end.Load()&copying != 0 {
			runtime.Gosched()
		}
	}
	groups := make([]*Group[E], 0, len(r.groups))
	for _, x := range r.groups {
		if x != g {
			groups = append(groups, x)
		}
	}
	r.groups = groups
	r.listWorkers()
	for _, w := range g.works {
		w.wakeUp()
	}
	r.wakeProducer()
}

// listWorkers lists the workers of r.groups for wakeReaders.
func (r *Ring[E]) listWorkers() {
	var ws []*Worker[E]
	for _, g := range r.groups {
		ws = append(ws, g.works...)
	}
	r.workers.Store(&ws)
}

// Workers returns the group's worker handles, one per reading goroutine.
func (g *Group[E]) Workers() []*Worker[E] { return g.works }

// Cap is the group's capacity.
func (g *Group[E]) Cap() int { return int(g.cap) }

// Len is the number of events waiting for the group: put and not started.
func (g *Group[E]) Len() int {
	t, n := g.ring.tail.Load(), g.next.Load()
	waiting := int64(t) - int64(n)
	for _, w := range g.works {
		if c, e := w.cur.Load(), w.end.Load()&^copying; c < e {
			waiting += int64(e - c)
		}
	}
	return int(max(waiting, 0))
}

// HighWater is the most events that have waited at once, as seen by a worker
// taking a run or by the producer finding the group full.
func (g *Group[E]) HighWater() int {
	h := g.high.Load()
	for _, w := range g.works {
		h = max(h, w.high.Load())
	}
	return int(min(h, int64(g.cap)))
}

// oldest loads the oldest sequence the group holds: its cursor, or the start
// of a worker's run not fully started. Producer side.
func (g *Group[E]) oldest() uint64 {
	// The cursor first: a worker announces its run before it advances the
	// cursor, so a run can't slip between the two loads.
	low := g.next.Load()
	for _, w := range g.works {
		if c, e := w.cur.Load(), w.end.Load(); c < e&^copying || e&copying != 0 {
			low = min(low, c)
		}
	}
	return low
}

// Room reports whether g can take one more event now. Producer side.
func (g *Group[E]) Room() bool {
	t := g.ring.tail.Load()
	if t-g.low < g.cap {
		return true
	}
	g.low = g.oldest()
	if d := int64(t - g.low); d > g.high.Load() {
		g.high.Store(d)
	}
	return t-g.low < g.cap
}

// Evict takes the oldest event waiting in g's cursor (DropOldest) and copies
// it to dst; false if there is none. g's batch must be 1, so that nothing
// older waits in a worker's run. Producer side.
func (g *Group[E]) Evict(dst *E) bool {
	for {
		n := g.next.Load()
		if n >= g.ring.tail.Load() {
			return false
		}
		if g.next.CompareAndSwap(n, n+1) {
			*dst = *g.ring.slot(n) // the producer is the slot's only writer
			return true
		}
	}
}

// Discard takes every event waiting in g's cursor and passes each to f; it
// returns how many there were. Events already in a worker's run are left to
// the worker (see TakeRuns). Producer side.
func (g *Group[E]) Discard(f func(*E)) int {
	for {
		n, t := g.next.Load(), g.ring.tail.Load()
		if n >= t {
			return 0
		}
		if g.next.CompareAndSwap(n, t) {
			for s := n; s < t; s++ {
				f(g.ring.slot(s))
			}
			return int(t - n)
		}
	}
}

// TakeRuns takes the events of the workers' runs that have not started and
// returns how many; each worker's Next then reports them as Taken, so that
// the worker can settle them without counting them again.
func (g *Group[E]) TakeRuns() int {
	taken := 0
	for _, w := range g.works {
		for {
			c, e := w.cur.Load(), w.end.Load()
			if e&copying != 0 {
				runtime.Gosched() // the run may not be the worker's yet: wait for the copy
				continue
			}
			if c >= e {
				break
			}
			if w.cur.CompareAndSwap(c, e) {
				taken += int(e - c)
				break
			}
		}
	}
	return taken
}

// WaitRoom returns a channel that is closed when g may have room (or the
// ring was closed); the producer waits on it after unlocking, then checks
// Room again. Producer side.
func (g *Group[E]) WaitRoom() <-chan struct{} {
	r := g.ring
	r.roomMu.Lock()
	if r.room == nil {
		r.room = make(chan struct{})
	}
	r.waiters.Add(1)
	room := r.room
	r.roomMu.Unlock()
	// Look again now that workers will wake us: one that made room before
	// it could see the waiter is caught here.
	if g.Room() || r.closed.Load() || g.gone.Load() {
		r.wakeProducer()
	}
	return room
}
