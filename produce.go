package eventbus

import (
	"fmt"

	"github.com/quantumtrader/eventbus/internal/ring"
)

// verdict is what the publisher decided for one subscription's lane.
type verdict uint8

const (
	take   verdict = iota // the lane has room
	drop                  // full, DropNewest: the lane skips the event
	evict                 // full, DropOldest: the oldest waiting event makes room
	closed                // the lane has left its ring
)

// offer writes ev for every asynchronous subscription, or for none: it first
// checks each lane, and if one keeps the publisher out it returns that lane
// with the channel to wait on (Block) or the error (Reject). The caller holds
// t.mu; offer takes and releases the locks of SubscribeAll rings.
func (t *memTopic[T]) offer(subs *subList[T], all *subList[any], ev *Event[T], anyEv *Event[any], w *waiter) (*lane, <-chan struct{}, error) {
	var tl []*subscriber[T]
	if subs != nil {
		tl = subs.async
	}
	var al []*subscriber[any]
	if all != nil {
		al = all.async
	}
	if len(tl) == 0 && len(al) == 0 {
		return nil, nil, nil
	}
	// Every subscription is a lane of the topic's ring, and the ring has
	// room in each of them (a group of the ring that is no longer in subs,
	// a subscription leaving, only makes Room stricter): one write serves
	// them all. Subscriptions in subs are open: Unsubscribe leaves the list,
	// under the lock held here, before it closes the gate.
	if len(al) == 0 && w == nil && subs.allShared && t.ring != nil && t.ring.Room() {
		put(t.ring, ev, nil)
		return nil, nil, nil
	}
	for _, s := range al {
		s.prodMu.Lock()
	}
	blocker, wait, err := t.offerLocked(tl, al, ev, anyEv, w)
	for _, s := range al {
		s.prodMu.Unlock()
	}
	return blocker, wait, err
}

// offerLocked is offer with the SubscribeAll rings locked.
func (t *memTopic[T]) offerLocked(tl []*subscriber[T], al []*subscriber[any], ev *Event[T], anyEv *Event[any], w *waiter) (*lane, <-chan struct{}, error) {
	var buf [32]verdict
	vs := buf[:0]
	if len(al) > 0 {
		*anyEv = boxed(ev)
	}
	vs, blocker, wait := check(tl, ev, vs)
	if blocker == nil {
		vs, blocker, wait = check(al, anyEv, vs)
	}
	if blocker != nil {
		if blocker.sub.policy == Reject {
			return blocker, nil, fmt.Errorf("%w: %s, publish to %s rejected", ErrQueueFull, blocker, ev.Topic)
		}
		return blocker, wait, nil
	}
	n := len(tl)
	if w != nil {
		w.add(owed(tl, vs[:n], ev, w) + owed(al, vs[n:], anyEv, w))
	}
	// One write to the topic's ring serves all its shared lanes.
	if t.ring != nil && sharesRing(tl, vs[:n]) {
		put(t.ring, ev, w)
	}
	write(tl, vs[:n], ev, w)
	write(al, vs[n:], anyEv, w)
	return nil, nil, nil
}

// check decides, lane by lane, whether ev can be written; it stops at the
// first lane that keeps the publisher out.
func check[T any](subs []*subscriber[T], ev *Event[T], vs []verdict) ([]verdict, *lane, <-chan struct{}) {
	for _, s := range subs {
		l := s.laneOf(ev)
		switch {
		case l.group == nil || s.gate.Load()&gateClosed != 0:
			vs = append(vs, closed)
		case l.group.Room():
			vs = append(vs, take)
		case s.policy == DropNewest:
			vs = append(vs, drop)
		case s.policy == DropOldest:
			vs = append(vs, evict)
		case s.policy == Reject:
			return vs, l.lane, nil
		default:
			return vs, l.lane, l.group.WaitRoom()
		}
	}
	return vs, nil, nil
}

// owed counts the deliveries a PublishWait waits for, and records the ones
// it cannot have.
func owed[T any](subs []*subscriber[T], vs []verdict, ev *Event[T], w *waiter) int {
	n := 0
	for i, s := range subs {
		switch vs[i] {
		case take, evict:
			if l := s.laneOf(ev); l.lane == w.selfLane {
				w.fail(fmt.Errorf("%w: PublishWait from the handler of %s cannot wait for it; the event is queued for it", ErrDeadlock, l.lane))
			} else {
				n++
			}
		case drop:
			w.fail(dropError(s.Subscription, ev))
		}
	}
	return n
}

func sharesRing[T any](subs []*subscriber[T], vs []verdict) bool {
	for i, s := range subs {
		if vs[i] == take && s.lanes[0].shared {
			return true
		}
	}
	return false
}

// write puts ev into the private ring of each lane that takes it.
func write[T any](subs []*subscriber[T], vs []verdict, ev *Event[T], w *waiter) {
	for i, s := range subs {
		l := s.laneOf(ev)
		switch vs[i] {
		case drop:
			s.c.dropped.Add(1)
			continue
		case evict:
			var old item[T]
			if l.group.Evict(&old) {
				s.c.dropped.Add(1)
				if old.w != nil && old.w.selfLane != l.lane {
					old.w.finish(dropError(s.Subscription, &old.ev))
				}
			}
		case closed:
			continue
		}
		if !l.shared {
			put(l.ring, ev, w)
		}
	}
}

// put writes ev and w in r's next slot, without a copy of them on the stack.
func put[T any](r *ring.Ring[item[T]], ev *Event[T], w *waiter) {
	it := r.Claim()
	it.ev, it.w = *ev, w
	r.Commit()
}

func dropError[T any](s *Subscription, ev *Event[T]) error {
	return fmt.Errorf("%w: %s dropped %s event %s (%v)", ErrQueueFull, s, ev.Topic, ev.ID, s.policy)
}

// sharedRing returns the topic's shared ring, making it on first use. The
// caller holds t.mu.
func (t *memTopic[T]) sharedRing() *ring.Ring[item[T]] {
	if t.ring == nil {
		t.ring = ring.New[item[T]](t.bus.cfg.queueSize)
	}
	return t.ring
}

// closeQueues closes the topic's shared ring: its workers drain it and
// exit. (Each lane closes a ring of its own, see closeQueue.)
func (t *memTopic[T]) closeQueues() {
	if t.ring != nil {
		t.ring.Close()
	}
}
