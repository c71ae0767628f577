package eventbus

import (
	"sync/atomic"

	"github.com/quantumtrader/eventbus/internal/hist"
)

// retire moves the counts of an unsubscribed subscription into its topic's
// retired totals: an asynchronous one when its last worker has exited, a
// Sync one at once. It sets gateFolded, once; a count made after that
// (a Sync call still running, a retry failing late) sees the bit and
// moves itself (see count).
//
// The bit is set under the retired totals' lock, in the same hold that
// folds the counts and takes the subscription out of the retiring: a late
// count that sees the bit waits for that lock, so Stats never finds a
// subscription both folded and retiring.
func (s *Subscription) retire() {
	r := s.bus.retired(s.topic)
	if testHookRetire != nil {
		testHookRetire()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.gate.Or(gateFolded)&gateFolded != 0 {
		return
	}
	s.foldLocked(r)
	r.latency.Add(s.latency.Snapshot())
	delete(r.retiring, s)
}

// testHookRetire, when set by a test, runs as retire begins, before it
// takes the retired totals' lock.
var testHookRetire func()

// foldLocked adds to r what the subscription counted since it was last
// folded. The caller holds r.mu. Every count goes in exactly once: those
// made before gateFolded was set are in retire's fold, and each made after
// it is in the fold of the caller that made it, or in an earlier one.
func (s *Subscription) foldLocked(r *retiredStats) {
	now := s.load()
	r.sum.Add(now.minus(s.folded))
	s.folded = now
}

// foldIfRetired moves a count made after retire into the topic's retired
// totals. The caller has just made the count.
func (s *Subscription) foldIfRetired() {
	if s.gate.Load()&gateFolded == 0 {
		return
	}
	r := s.bus.retired(s.topic)
	r.mu.Lock()
	s.foldLocked(r)
	r.mu.Unlock()
}

// syncCounts count the calls of a Sync handler: each call adds one to ok
// or to failed as it returns. Publishers of the topic write them for every
// call, so they are padded away from the fields before them, which every
// publish reads, and from most of those after.
type syncCounts struct {
	_          [64]byte
	ok, failed atomic.Uint64
	_          [48]byte
}

// countCall counts one Sync call, unless it was skipped.
func (s *Subscription) countCall(o outcome) {
	switch o {
	case handled:
		s.calls.ok.Add(1)
	case failed:
		s.calls.failed.Add(1)
	default:
		return
	}
	s.foldIfRetired()
}

// count adds d to the subscription's counters (see foldIfRetired: a Sync
// call may go on failing, retrying and dead-lettering after its
// subscription left).
func (s *Subscription) count(d Counts) {
	s.c.add(d)
	s.foldIfRetired()
}

// load reads the subscription's counts.
func (s *Subscription) load() Counts {
	t := s.c.load()
	if s.sync {
		ok := s.calls.ok.Load()
		t.Dispatched, t.Delivered = ok+s.calls.failed.Load(), ok
		return t
	}
	d, dl := s.engine.deliveries()
	t.Dispatched += d
	t.Delivered += dl
	return t
}

// Stats returns a snapshot of the subscription's counters.
func (s *Subscription) Stats() SubscriptionStats {
	st, _ := s.stats()
	return st
}

// stats is Stats, and the latency histogram its quantiles come from.
func (s *Subscription) stats() (SubscriptionStats, hist.Snapshot) {
	lat := s.latency.Snapshot()
	st := SubscriptionStats{
		Name: s.name, Topic: s.topic, Where: s.where,
		Sync: s.sync, Concurrency: s.concurrency, Policy: s.policy,
		Counts:     s.load(),
		LatencyP50: lat.Quantile(0.50), LatencyP99: lat.Quantile(0.99),
	}
	for _, l := range s.lanes {
		if l.length != nil {
			n, c, hw := l.length()
			st.QueueLen, st.QueueCap, st.HighWater = st.QueueLen+n, st.QueueCap+c, st.HighWater+hw
		}
	}
	return st, lat
}
