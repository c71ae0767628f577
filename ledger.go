package eventbus

import "slices"

// syncLedger counts the calls of a topic's Sync subscriptions for one
// snapshot of them (a subList), so that a publish counts all its calls with
// one increment rather than one per subscription: per handler, that write
// to each subscription cost more than the call of a small handler.
//
// done is the number of publishes that took the snapshot and whose
// handlers have all returned: each counts, for every member, as one call
// that succeeded. The few that did not (a call failed, or was skipped
// because its subscription had left) are corrected in the member's own
// calls and delivers at once (correctSync). A member's counts are its own
// plus the done of every ledger it is still in (Subscription.syncCalls).
// When its snapshot has been replaced and its last publish has finished, a
// ledger folds its done into its members' own counts and is dropped. A
// member that leaves (retire) takes what the ledger counted for it so far
// and leaves it: publishes still running count its calls late.
//
// Everything here is guarded by the topic's lock, which is also the
// members' callsMu.
type syncLedger struct {
	done     uint64 // finished publishes not yet folded into the members' counts
	inflight int    // publishes running the members' handlers
	current  bool   // still the topic's snapshot: publishes may start on it
	leavers  bool   // a member has left: finishing publishes look for it
	members  []*Subscription
}

func openLedger(members []*Subscription) *syncLedger {
	l := &syncLedger{current: true, members: members}
	for _, s := range members {
		s.ledgers = append(s.ledgers, l)
	}
	return l
}

// close marks the ledger's snapshot replaced: no publish starts on it.
func (l *syncLedger) close() {
	l.current = false
	if l.inflight == 0 {
		l.fold()
	}
}

// fold moves what the ledger counted into its members' own counts and
// takes it out of their ledgers.
func (l *syncLedger) fold() {
	for _, s := range l.members {
		l.credit(s)
		s.ledgers = remove(s.ledgers, l)
	}
	l.members = nil
}

// leaveLedgers moves what its ledgers counted for s into its own counts,
// and takes s out of them: from now on, finishing publishes count its calls
// late. retire calls it, under the topic's lock.
func (s *Subscription) leaveLedgers() {
	for _, l := range s.ledgers {
		l.credit(s)
		l.members = remove(l.members, s)
		l.leavers = true
	}
	s.ledgers = nil
}

// credit adds what the ledger counted to a member's own counts.
func (l *syncLedger) credit(s *Subscription) {
	s.calls += l.done
	s.delivers += l.done
}

func remove[E comparable](xs []E, x E) []E {
	if i := slices.Index(xs, x); i >= 0 {
		return slices.Delete(xs, i, i+1)
	}
	return xs
}
