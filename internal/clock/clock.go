// Package clock reads the wall clock at the cost of one counter read.
//
// time.Now reads two clocks (wall and monotonic), each through a vDSO call.
// The publish path needs one timestamp per event, so Now reads the wall
// clock only once per ResyncInterval (an anchor) and adds the time elapsed
// since the anchor, measured with the cheapest steady counter at hand:
//
//   - the processor's time-stamp counter (RDTSC on amd64), scaled by its rate
//     measured against the monotonic clock over the last interval. It is used
//     only where one read costs less than a monotonic clock read, and only
//     while two intervals in a row measure the same rate (within about 120
//     ppm), so a counter that stops, jumps or changes speed falls back to the
//     monotonic clock until it is steady again;
//   - otherwise the monotonic clock.
//
// Between anchors both advance with the wall clock: Linux slews
// CLOCK_MONOTONIC and CLOCK_REALTIME by the same frequency adjustment, and
// the counter's rate is measured against CLOCK_MONOTONIC. A step of the
// system clock shows up within ResyncInterval.
package clock

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// ResyncInterval is how long an anchor is trusted before the wall clock is read again.
const ResyncInterval = 100 * time.Millisecond

// anchor is a reading of the wall clock and what Now needs to extrapolate
// from it. An anchor is never changed once stored.
type anchor struct {
	mono time.Time // time.Now at the anchor, with its monotonic reading
	wall int64     // mono's wall clock in Unix nanoseconds
	tick uint64    // the tick counter at mono
	rate uint64    // nanoseconds per tick in 32.32 fixed point, measured from the previous anchor; 0 if unknown
	span uint64    // ticks in ResyncInterval if Now extrapolates with ticks; 0: with the monotonic clock
}

var current atomic.Pointer[anchor]

func init() { current.Store(read()) }

// Now returns the current wall-clock time in UTC, without a monotonic reading.
// It is safe for concurrent use and does not allocate except once per
// ResyncInterval.
func Now() time.Time {
	return time.Unix(0, UnixNano()).UTC()
}

// UnixNano is Now as nanoseconds since the Unix epoch.
func UnixNano() int64 {
	a := current.Load()
	if a.span != 0 {
		if d := ticks() - a.tick; d < a.span { // a counter that went back wraps past span
			hi, lo := bits.Mul64(d, a.rate)
			return a.wall + int64(hi<<32|lo>>32)
		}
	} else if d := time.Since(a.mono); d >= 0 && d < ResyncInterval {
		return a.wall + int64(d)
	}
	return resync(a).wall
}

// resync replaces the anchor prev, which has expired, with a fresh one.
// Goroutines that find it expired at once each read one, and the first
// stored wins: the others use it, so a slower resync never replaces a
// newer anchor with an older one.
func resync(prev *anchor) *anchor {
	a := next(prev, read(), haveTicks && ticksAreCheap())
	if !current.CompareAndSwap(prev, a) {
		return current.Load()
	}
	return a
}

// read takes an anchor: the wall clock and the tick counter read together.
// Of three tries it keeps the one whose two counter reads around time.Now
// are closest, so a preemption in the middle does not skew the rate.
func read() *anchor {
	var best anchor
	window := ^uint64(0)
	for range 3 {
		t0 := ticks()
		now := time.Now()
		t1 := ticks()
		if d := t1 - t0; d < window {
			window = d
			best = anchor{mono: now, wall: now.UnixNano(), tick: t0 + d/2}
		}
	}
	return &best
}

// next completes the fresh anchor a that follows prev: it measures the
// counter's rate between them and extrapolates with ticks if useTicks and
// the rate agrees with the one prev measured.
func next(prev, a *anchor, useTicks bool) *anchor {
	a.rate = rate(prev, a)
	if useTicks && agree(prev.rate, a.rate) {
		a.span = spanOf(a.rate)
	}
	return a
}

// rate returns the nanoseconds per tick between anchors a and b, in 32.32
// fixed point, or 0 if the window is too short to measure or the counter
// did not advance.
func rate(a, b *anchor) uint64 {
	ns := b.mono.Sub(a.mono)
	dt := b.tick - a.tick
	if ns < ResyncInterval/2 || dt == 0 || dt > 1<<62 {
		return 0
	}
	hi, lo := uint64(ns)>>32, uint64(ns)<<32
	if hi >= dt { // slower than a tick per 4 s: not a clock
		return 0
	}
	q, _ := bits.Div64(hi, lo, dt)
	return q
}

// agree reports whether two measured rates are both known and within about
// 120 ppm of each other.
func agree(r0, r1 uint64) bool {
	if r0 == 0 || r1 == 0 {
		return false
	}
	d := max(r0, r1) - min(r0, r1)
	return d <= r0>>13
}

// spanOf returns the number of ticks in ResyncInterval at rate r.
func spanOf(r uint64) uint64 {
	hi, lo := uint64(ResyncInterval)>>32, uint64(ResyncInterval)<<32
	if hi >= r {
		return 0
	}
	q, _ := bits.Div64(hi, lo, r)
	return q
}

// ticksAreCheap reports, once, whether a read of the tick counter costs
// less than a read of the monotonic clock. Where a hypervisor traps RDTSC
// it does not, and Now keeps the monotonic clock.
var ticksAreCheap = sync.OnceValue(func() bool {
	start := time.Now()
	var sum uint64
	fastest := func(read func()) uint64 {
		least := ^uint64(0)
		for range 5 {
			t0 := ticks()
			for range 16 {
				read()
			}
			least = min(least, ticks()-t0)
		}
		return least
	}
	counter := fastest(func() { sum += ticks() })
	monotonic := fastest(func() { sum += uint64(time.Since(start)) })
	sink.Store(sum)
	return counter < monotonic
})

var sink atomic.Uint64 // keeps ticksAreCheap's reads from being optimised away
