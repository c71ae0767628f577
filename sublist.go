package eventbus

// subList is an immutable snapshot of the subscriptions of a topic (or of
// SubscribeAll); publishers read it without a lock.
type subList[T any] struct {
	sync, async []*subscriber[T]
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
		n.sync, n.async = l.sync, l.async
	}
	if s.sync {
		n.sync = append(n.sync[:len(n.sync):len(n.sync)], s)
	} else {
		n.async = append(n.async[:len(n.async):len(n.async)], s)
	}
	return n.setAllShared()
}

func (l *subList[T]) without(s *subscriber[T]) *subList[T] {
	n := &subList[T]{}
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
	return n.setAllShared()
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
