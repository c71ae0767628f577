package ring

import (
	"runtime"
	"sync/atomic"
)

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
