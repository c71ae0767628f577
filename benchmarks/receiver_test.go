package benchmarks

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// receiver is what every subscriber's handler reports to, whatever the
// library: it counts the events, notes those that arrive after an event
// published later, and wakes the publisher waiting for the last one. The
// same bookkeeping runs in every benchmark, so it adds the same small cost
// to each.
type receiver struct {
	got       atomic.Uint64
	want      atomic.Uint64 // the count the publisher waits for; never reached until set
	wake      chan struct{}
	max       uint64 // the highest Seq so far; touched only by the handler
	reordered uint64 // events that came after one published later
	_         [64]byte
}

func newReceivers(n int) []*receiver {
	rs := make([]*receiver, n)
	for i := range rs {
		rs[i] = &receiver{wake: make(chan struct{}, 1)}
		rs[i].want.Store(^uint64(0))
	}
	return rs
}

// receive is called by a handler with the Seq of each event it gets. It must
// not be called concurrently for one receiver; a library that runs one
// subscriber's handler on several goroutines at once must serialise it.
func (r *receiver) receive(seq uint64) {
	if seq < r.max {
		r.reordered++
	} else {
		r.max = seq
	}
	// The publisher stores want before it reads got, so whichever of the two
	// sees the other's write, the last event cannot go unnoticed.
	if r.got.Add(1) >= r.want.Load() {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// waitTimeout bounds how long a benchmark waits for a library to deliver
// what it accepted before it declares the rest lost.
const waitTimeout = time.Minute

// wait blocks until r has received n events or timeout fires.
func (r *receiver) wait(n uint64, timeout <-chan time.Time) bool {
	r.want.Store(n)
	for r.got.Load() < n {
		select {
		case <-r.wake:
		case <-timeout:
			return false
		}
	}
	return true
}

// A scenario sets a library up with one subscriber per receiver, publishes
// in a b.Loop loop, and returns how many events it published and a function
// that stops everything it started.
type scenario func(b *testing.B, rs []*receiver) (published uint64, stop func())

// runSync runs a synchronous scenario: when its loop is over every handler
// has already run.
func runSync(b *testing.B, subs int, sc scenario) {
	leaks := goleak.IgnoreCurrent()
	b.ReportAllocs()
	rs := newReceivers(subs)
	n, stop := sc(b, rs)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	stop()
	check(b, rs, n, true)
	goleak.VerifyNone(b, leaks)
}

// runAsync runs an asynchronous scenario end to end: the clock keeps running
// after the loop until every subscriber has handled every event, so what is
// still queued when the publisher stops counts too.
func runAsync(b *testing.B, subs int, ordered bool, sc scenario) {
	leaks := goleak.IgnoreCurrent()
	b.ReportAllocs()
	rs := newReceivers(subs)
	n, stop := sc(b, rs)
	timeout := time.NewTimer(waitTimeout)
	b.StartTimer() // b.Loop stopped it when the loop ended
	for _, r := range rs {
		if !r.wait(n, timeout.C) {
			b.StopTimer()
			stop()
			b.Fatalf("after %v, a subscriber has %d of %d events", waitTimeout, r.got.Load(), n)
		}
	}
	b.StopTimer()
	timeout.Stop()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	stop()
	check(b, rs, n, ordered)
	goleak.VerifyNone(b, leaks)
}

// check fails the benchmark if a subscriber lost or duplicated an event, or
// got events out of order from a library that promises order. Where order is
// not promised it reports how much of it was lost.
func check(b *testing.B, rs []*receiver, n uint64, ordered bool) {
	b.Helper()
	if n == 0 {
		b.Fatal("nothing was published")
	}
	var reordered uint64
	for i, r := range rs {
		if got := r.got.Load(); got != n {
			b.Fatalf("subscriber %d received %d events, want %d", i, got, n)
		}
		reordered += r.reordered
	}
	if ordered && reordered > 0 {
		b.Fatalf("%d events arrived after an event published later", reordered)
	}
	if !ordered {
		b.ReportMetric(float64(reordered)/float64(n*uint64(len(rs))), "reordered/event")
	}
}
