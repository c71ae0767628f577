// Package ring is the delivery engine of eventbus: a bounded multicast ring
// buffer, written once per event and read by any number of reader groups,
// each through its own cursor, in the manner of the LMAX Disruptor.
//
// One producer at a time: the caller serialises the producer-side methods
// (Room, Group.Room, Put, Claim, Commit, Group.Evict,
// Group.Discard, Add, Remove, Close) with its own lock. Readers need no
// lock. A group is one subscription lane: it reads every event put after it
// joined, at most Cap of them waiting, and its workers share it, each event
// going to one of them.
//
// A worker takes a run of up to Batch events at once: it announces the run
// (start and end), claims it by advancing the group's cursor with a
// compare-and-swap, copies the slots into its own buffer and then hands the
// events out one by one. The announced run still counts against the group's
// capacity until each event is started, so a group never holds more than Cap
// events, and the producer never overwrites a slot that is being copied.
//
// Memory ordering: the producer writes a slot and then stores the slot's
// sequence number; a worker loads the sequence number and then reads the
// slot. A worker announces its run,
// advances the cursor, copies and then clears its copying mark; the producer
// loads the cursor, then the announcements, and only then writes a slot
// again. Every pair is a sync/atomic store and load, as Go's memory model
// and the race detector understand them; Commit's stores come before its
// load of the parked count, so a worker that parks after looking at a slot
// not yet published is woken.
//
// Cache lines: the producer keeps its own lower bound of how far each group
// has read and loads the group's shared state only when that bound says the
// group might be full, so a put normally touches no line a worker writes.
// Workers load the shared tail once per run, not once per event. The lines
// a put writes were last read by the workers' cores; Claim fetches them for
// writing a few slots ahead (PREFETCHW on amd64), so that the transfer does
// not hold up the put. It matters most when the two cores are on different
// caches; benchmarks/NOTES.md has the benchstat.
package ring

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// pad keeps the hot fields of different writers on different cache lines.
type pad [64]byte

// copying marks a worker's announced run whose slots are still being copied.
const copying = 1 << 63

// Ring is the buffer of one topic (shared by its groups) or of one lane
// (private to it).
type Ring[E any] struct {
	_      pad
	tail   atomic.Uint64 // the next sequence to write; workers rarely look
	_      pad
	parked atomic.Int32 // workers asleep or about to be; Put, Commit and WakeParked wake them
	closed atomic.Bool
	_      pad
	slots  []slot[E]
	mask   uint64      // len(slots) - 1: the size is a power of two
	groups []*Group[E] // producer-owned; readers use only their own group
	// workers is the workers of every group, for waking them from any
	// goroutine (see WakeParked).
	workers atomic.Pointer[[]*Worker[E]]
	// roomUntil is producer-owned: every group has room for the events
	// below this sequence (see Room); 0 when a group joined. (One that
	// leaves only makes room.)
	roomUntil uint64

	roomMu  sync.Mutex
	waiters atomic.Int32  // producers waiting for room
	room    chan struct{} // closed when a worker makes room; nil when nobody waits
}

// slot holds one event; seq is 1 + the sequence of the event in it.
type slot[E any] struct {
	seq atomic.Uint64
	val E
}

// New returns a ring of at least size slots: the next power of two, so that
// a slot is found with a mask rather than a division. Capacity is a
// group's business (see Add), not the ring's size.
func New[E any](size int) *Ring[E] {
	n := 1
	for n < size {
		n <<= 1
	}
	return &Ring[E]{slots: make([]slot[E], n), mask: uint64(n - 1)}
}

func (r *Ring[E]) slot(seq uint64) *E { return &r.slots[seq&r.mask].val }

// ready reports whether the event of sequence seq has been put.
func (r *Ring[E]) ready(seq uint64) bool {
	return r.slots[seq&r.mask].seq.Load() == seq+1
}

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

// Worker is one reading goroutine's handle on its group.
type Worker[E any] struct {
	g *Group[E]
	_ pad
	// cur is the sequence of the next event of the run not yet started; end
	// is the end of the run, with the copying bit while its slots are being
	// copied. cur < end means events wait in the run.
	cur     atomic.Uint64
	end     atomic.Uint64
	asleep  atomic.Bool
	high    atomic.Int64 // the most events waiting when this worker took a run
	_       pad
	wake    chan struct{}
	buf     []E
	start   uint64 // sequence of buf[0]
	pos     uint64 // the worker's own copy of cur
	runEnd  uint64 // the end of the current run
	runs    uint64 // runs taken, for sampling the high-water mark
	woken   bool   // parked since the last run: take what is there at once
	lingers uint64 // times the worker waited for a run to build up (see Next)
	tk, te  uint64 // a run TakeRuns took, still to report as Taken

	// Idle, if set, is called by the worker's goroutine before it parks.
	Idle func()
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

// Room reports whether every group of the ring can take one more event now,
// as Group.Room would for each. It looks at the groups only when the tail
// reaches the lowest bound it found last time, so a put that every group
// has room for costs one comparison rather than one per group. Producer
// side.
func (r *Ring[E]) Room() bool {
	t := r.tail.Load()
	if t < r.roomUntil {
		return true
	}
	until := ^uint64(0)
	for _, g := range r.groups {
		if !g.Room() {
			return false
		}
		until = min(until, g.low+g.cap)
	}
	r.roomUntil = until
	return true
}

// Put writes e at the tail for every group. Every group must have Room, or,
// when it has none, must not be counted on to read e (Evict first, or Remove).
func (r *Ring[E]) Put(e *E) {
	*r.Claim() = *e
	r.Commit()
}

// Claim returns the slot at the tail for the producer to write in place,
// which saves copying an event it builds from parts; Commit then puts it.
// The rules of Put apply.
func (r *Ring[E]) Claim() *E {
	t := r.tail.Load()
	for r.overruns(t) {
		runtime.Gosched() // only possible for a group without Room: a caller bug, or a copy in progress
	}
	// A slot's lines were last read by the readers' core. Fetching them
	// for writing a few puts ahead lets that transfer overlap the puts in
	// between; otherwise the put's stores wait for it, at the latest in
	// the next atomic store or the caller's unlock.
	if havePrefetchw {
		prefetchw(unsafe.Pointer(&r.slots[(t+ahead)&r.mask]), unsafe.Sizeof(r.slots[0]))
	}
	return &r.slots[t&r.mask].val
}

// ahead is how many slots ahead of the tail Claim fetches lines for writing.
const ahead = 4

// Commit puts the event written in the slot Claim returned.
func (r *Ring[E]) Commit() {
	t := r.tail.Load()
	r.slots[t&r.mask].seq.Store(t + 1)
	r.tail.Store(t + 1)
	r.WakeParked()
}

// WakeParked wakes the workers if any is parked. Unlike the producer-side
// methods it may be called from any goroutine, without the producer's
// lock.
func (r *Ring[E]) WakeParked() {
	if r.parked.Load() != 0 {
		r.wakeReaders()
	}
}

// overruns reports whether writing sequence t would overwrite a slot some
// group still holds.
func (r *Ring[E]) overruns(t uint64) bool {
	size := uint64(len(r.slots))
	for _, g := range r.groups {
		if t-g.low >= size {
			if g.low = g.oldest(); t-g.low >= size {
				return true
			}
		}
	}
	return false
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

// Close tells the workers that nothing more will be put: their Next returns
// Done once the group has read everything. Producer side.
func (r *Ring[E]) Close() {
	if r.closed.CompareAndSwap(false, true) {
		r.wakeReaders()
		r.wakeProducer()
	}
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

func (r *Ring[E]) wakeProducer() {
	if r.waiters.Load() == 0 {
		return
	}
	r.roomMu.Lock()
	if r.room != nil {
		close(r.room)
		r.room = nil
	}
	r.waiters.Store(0)
	r.roomMu.Unlock()
}

func (r *Ring[E]) wakeReaders() {
	if ws := r.workers.Load(); ws != nil {
		for _, w := range *ws {
			w.wakeUp()
		}
	}
}

func (w *Worker[E]) wakeUp() {
	// Load first: a CAS takes the worker's line away from it even when the
	// worker is awake, and Put, Commit and WakeParked wake every worker of
	// the ring when any one of them is parked.
	if w.asleep.Load() && w.asleep.CompareAndSwap(true, false) {
		w.g.ring.parked.Add(-1)
		select {
		case w.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// Status says what Next returned.
type Status uint8

const (
	// Got: an event to handle.
	Got Status = iota
	// Taken: an event of the worker's run that TakeRuns took; settle it
	// (its waiters, say) without handling or counting it.
	Taken
	// Done: the group was removed, or the ring closed and read to the end.
	Done
)

// spins is how many times a worker that found nothing yields to other
// goroutines before it parks: parking and being woken costs microseconds, a
// yield a fraction of one.
const spins = 4

// minRun is the run a streaming reader lets build up before it takes one:
// while fewer events wait, it waits at lingerLevel (a yield and a short
// pause), up to maxLingers times. A reader that keeps up takes runs of a few
// events otherwise, and pulls every slot's line across cores as it is
// written; waiting delays the last events of a burst a little.
const (
	minRun      = 64
	lingerLevel = 4
	maxLingers  = 8
)

// Next returns the worker's next event, waiting while there is none. The
// pointer is valid until the next call.
func (w *Worker[E]) Next() (*E, Status) {
	g, r := w.g, w.g.ring
	lingered := 0 // how many of the idle rounds were lingers (see below)
	for idle := 0; ; idle++ {
		if w.tk < w.te {
			w.tk++
			return &w.buf[w.tk-1-w.start], Taken
		}
		// Hand out the run, one event at a time.
		if w.pos < w.runEnd {
			if w.cur.CompareAndSwap(w.pos, w.pos+1) {
				w.pos++
				if r.waiters.Load() != 0 {
					r.wakeProducer() // starting an event makes room too
				}
				return &w.buf[w.pos-1-w.start], Got
			}
			w.tk, w.te, w.pos = w.pos, w.runEnd, w.runEnd // TakeRuns took the rest
			continue
		}
		if g.gone.Load() {
			return nil, Done
		}
		n := g.next.Load()
		if r.ready(n) {
			// A streaming reader that takes each event as soon as it is
			// put reads the very line the producer writes next, and every
			// put then waits for that line to come back. So a reader that
			// finds less than a full run right after its last one, not
			// just woken, lingers (up to maxLingers times) to let the run
			// build up on lines it leaves alone. A reader that had found
			// nothing (an idle round that was not a linger) takes the
			// event at once: that is the handoff latency. Nor does it
			// linger when no run can build up: a group too small for one,
			// or a producer waiting for the room it would make.
			if idle == lingered && lingered < maxLingers && !w.woken && g.batch >= minRun && g.cap >= 2*minRun &&
				r.waiters.Load() == 0 && !r.ready(n+minRun-1) {
				lingered++
				w.lingers++
				runtime.Gosched()
				backoff(lingerLevel)
				continue
			}
			w.woken = false
			k := uint64(1)
			for k < uint64(g.batch) && r.ready(n+k) {
				k++
			}
			if w.claim(n, k) {
				idle, lingered = 0, 0
			}
			continue
		}
		if r.closed.Load() && n >= r.tail.Load() {
			return nil, Done
		}
		if idle < spins {
			runtime.Gosched()
			backoff(idle)
			continue
		}
		if w.Idle != nil {
			w.Idle()
		}
		w.park(n)
		idle, lingered = 0, 0
	}
}

// claim takes the run [n, n+k) and copies it into the worker's buffer.
func (w *Worker[E]) claim(n, k uint64) bool {
	g, r := w.g, w.g.ring
	// Announce the run before taking it (see oldest).
	w.cur.Store(n)
	w.end.Store((n + k) | copying)
	if !g.next.CompareAndSwap(n, n+k) {
		w.end.Store(n) // someone else took it: nothing announced
		if r.waiters.Load() != 0 {
			r.wakeProducer() // the announcement may have looked like a full group
		}
		return false
	}
	for i := range k {
		w.buf[i] = *r.slot(n + i)
	}
	w.start, w.pos, w.runEnd = n, n, n+k
	w.end.Store(n + k)
	// The depth: a full run means the worker is behind, so look at the
	// tail; otherwise only now and then, the tail being the producer's line.
	if w.runs++; k == uint64(g.batch) || w.runs%64 == 0 {
		if d := int64(r.tail.Load() - n); d > w.high.Load() {
			w.high.Store(d)
		}
	} else if int64(k) > w.high.Load() {
		w.high.Store(int64(k))
	}
	if r.waiters.Load() != 0 {
		r.wakeProducer()
	}
	return true
}

// park sleeps until Put, Commit, WakeParked, Close or Remove wakes the
// worker, unless an event came in while it was getting ready.
func (w *Worker[E]) park(n uint64) {
	r := w.g.ring
	// Count the worker among the parked before it can be woken: a wakeUp
	// between the two steps in the other order would take it off the count
	// before it was on it, and leave the count one short of the sleepers,
	// so that a put could find it 0 and leave another worker asleep.
	r.parked.Add(1)
	if parkHook != nil {
		parkHook(w)
	}
	w.asleep.Store(true)
	// Check again after announcing the sleep: a Put that stored its slot
	// before it saw parked != 0 is caught here.
	if r.ready(n) || r.closed.Load() || w.g.gone.Load() {
		w.wakeUp()
		select {
		case <-w.wake: // our own wake-up, if it got there
		default:
		}
		return
	}
	<-w.wake
	w.woken = true
}

// parkHook, if set, is called by park between its two steps: tests use it
// to wake a worker there.
var parkHook func(w any)

// Asleep reports whether the worker is parked waiting for events.
func (w *Worker[E]) Asleep() bool { return w.asleep.Load() }

// Progress is the sequence of the worker's next event not yet started; it
// changes whenever the worker starts an event.
func (w *Worker[E]) Progress() uint64 { return w.cur.Load() }

// backoff waits a little without touching shared memory, longer the longer
// the worker has found nothing: polling the tail as fast as possible would
// pull its cache line away from the producer on every event.
func backoff(idle int) {
	n := 64 << min(idle, 4)
	x := uint32(idle)
	for range n {
		x = x*1664525 + 1013904223
	}
	backoffSink.Store(x)
}

var backoffSink atomic.Uint32
