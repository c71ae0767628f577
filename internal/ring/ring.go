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
//
// ring.go holds the ring and the producer's side of it, group.go the
// groups (capacity, room, what waits), worker.go a reading goroutine's side
// (runs, parking).
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

// Close tells the workers that nothing more will be put: their Next returns
// Done once the group has read everything. Producer side.
func (r *Ring[E]) Close() {
	if r.closed.CompareAndSwap(false, true) {
		r.wakeReaders()
		r.wakeProducer()
	}
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
