package eventbus

import "github.com/quantumtrader/eventbus/internal/hist"

// retire moves the counts of an unsubscribed subscription into its topic's
// totals, once: an asynchronous one when its last worker has exited, a Sync
// one at once (retireLate adds the calls that finish afterwards).
func (s *Subscription) retire() {
	// From here on, Sync calls that finish count themselves (countUnlessFolded,
	// finishSync). The bit is set under the lock of calls, so that each
	// publish either counted its calls before the fold or sees the bit.
	if s.callsMu != nil {
		s.callsMu.Lock()
	}
	first := s.gate.Or(gateFolded)&gateFolded == 0
	if first {
		s.leaveLedgers()
	}
	if s.callsMu != nil {
		s.callsMu.Unlock()
	}
	if !first {
		return
	}
	r := s.bus.retired(s.topic)
	t, lat := s.load(), s.latency.Snapshot()
	r.mu.Lock()
	r.sum.add(t)
	r.latency.Add(lat)
	delete(r.retiring, s)
	r.mu.Unlock()
}

// retireLate adds d, counted after retire had folded the subscription's
// counts, to its topic's retired totals.
func (s *Subscription) retireLate(d Counts) {
	r := s.bus.retired(s.topic)
	r.mu.Lock()
	r.sum.add(d)
	r.mu.Unlock()
}

// callTally is the count of one Sync call.
func callTally(failed bool) Counts {
	if failed {
		return Counts{Dispatched: 1}
	}
	return Counts{Dispatched: 1, Delivered: 1}
}

// countCall counts one Sync call of a SubscribeAll subscription, or of
// Replay (see countUnlessFolded).
func (s *Subscription) countCall(fail bool) {
	s.countUnlessFolded(callTally(fail), func() {
		s.calls++
		if !fail {
			s.delivers++
		}
	})
}

// count adds d to the subscription's counters, or, for a Sync subscription
// whose counts Unsubscribe has already folded into its topic's retired
// totals, to those totals: a Sync call may go on failing, retrying and
// dead-lettering after its subscription left.
func (s *Subscription) count(d Counts) {
	if s.callsMu == nil {
		s.c.add(d)
		return
	}
	s.countUnlessFolded(d, func() { s.c.add(d) })
}

// countUnlessFolded runs add under callsMu, unless retire has already
// folded the subscription's counts into its topic's retired totals: then d
// goes to those.
func (s *Subscription) countUnlessFolded(d Counts, add func()) {
	s.callsMu.Lock()
	folded := s.gate.Load()&gateFolded != 0
	if !folded {
		add()
	}
	s.callsMu.Unlock()
	if folded {
		s.retireLate(d)
	}
}

// syncCalls returns the Sync calls counted under callsMu, and how many of
// them succeeded.
func (s *Subscription) syncCalls() (calls, delivers uint64) {
	if s.callsMu == nil {
		return 0, 0
	}
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	calls, delivers = s.calls, s.delivers
	for _, l := range s.ledgers {
		calls += l.done
		delivers += l.done
	}
	return calls, delivers
}

// load reads the subscription's counts.
func (s *Subscription) load() Counts {
	t := s.c.load()
	if s.remote {
		return t
	}
	if s.sync {
		t.Dispatched, t.Delivered = s.syncCalls()
		return t
	}
	for _, l := range s.lanes {
		for _, w := range l.ws {
			t.Dispatched += w.pub.dispatched.Load()
			t.Delivered += w.pub.delivered.Load()
		}
	}
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
