package eventbus

// subList is an immutable snapshot of the subscriptions of a topic (or of
// SubscribeAll); publishers read it without a lock. ledger counts the calls
// of a topic's Sync subscriptions made by the publishes that took this
// snapshot; a new one comes with every change to sync.
type subList[T any] struct {
	sync, async []*subscriber[T]
	ledger      *syncLedger
	// allShared: every async subscription is one lane in the topic's ring,
	// with its group there, so that a publish that finds room in each
	// writes the ring once and nothing else (see Topic.offer).
	allShared bool
}

func (l *subList[T]) setAllShared() *subList[T] {
	l.allShared = true
	for _, s := range l.async {
		if len(s.lanes) != 1 || !s.lanes[0].shared || s.lanes[0].group == nil {
			l.allShared = false
			break
		}
	}
	return l
}

func (l *subList[T]) empty() bool { return l == nil || len(l.sync)+len(l.async) == 0 }

func (l *subList[T]) with(s *subscriber[T]) *subList[T] {
	n := &subList[T]{}
	if l != nil {
		n.sync, n.async, n.ledger = l.sync, l.async, l.ledger
	}
	if s.sync {
		n.sync = append(n.sync[:len(n.sync):len(n.sync)], s)
		n.newLedger()
	} else {
		n.async = append(n.async[:len(n.async):len(n.async)], s)
	}
	return n.setAllShared()
}

func (l *subList[T]) without(s *subscriber[T]) *subList[T] {
	n := &subList[T]{ledger: l.ledger}
	for _, x := range l.sync {
		if x != s {
			n.sync = append(n.sync, x)
		}
	}
	for _, x := range l.async {
		if x != s {
			n.async = append(n.async, x)
		}
	}
	if s.sync {
		n.newLedger()
	}
	return n.setAllShared()
}

// newLedger replaces the ledger n took over from the list it replaces,
// whose Sync subscriptions were not the same. The caller holds the
// topic's lock. SubscribeAll's list has none: its Sync subscriptions count
// their calls under locks of their own (countSync).
func (n *subList[T]) newLedger() {
	if n.ledger != nil {
		n.ledger.close()
		n.ledger = nil
	}
	if len(n.sync) == 0 || n.sync[0].topic == "*" {
		return
	}
	members := make([]*Subscription, len(n.sync))
	for i, s := range n.sync {
		members[i] = s.Subscription
	}
	n.ledger = openLedger(members)
}

func (l *subList[T]) each(f func(*Subscription)) {
	if l == nil {
		return
	}
	for _, s := range l.sync {
		f(s.Subscription)
	}
	for _, s := range l.async {
		f(s.Subscription)
	}
}
