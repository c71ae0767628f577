package eventbus

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/quantumtrader/eventbus/internal/ring"
)

// subscriber is the typed half of a Subscription: the handler, the list it
// belongs to (a topic's, or the bus's SubscribeAll list) and, in the ring
// engine, its lanes. It is its own subEngine in the ring engine; the
// transport engine wraps it in a remoteSub.
type subscriber[T any] struct {
	*Subscription
	handler Handler[T]
	key     func(T) string // PartitionBy; nil for one lane
	lanes   []*laneT[T]
	list    *atomic.Pointer[subList[T]] // copy-on-write, replaced under listMu
	listMu  sync.Locker
	// prodMu is the producer lock of the subscription's rings: the topic's
	// lock, or, for SubscribeAll, a lock of its own taken by the publishers
	// of every topic.
	prodMu sync.Locker
}

// laneT is the typed half of a lane: its ring and its group in it.
type laneT[T any] struct {
	*lane
	ring   *ring.Ring[item[T]]
	group  *ring.Group[item[T]]
	shared bool      // the topic's ring, shared with its other shared lanes
	replay []item[T] // for Replay: handed to the first worker before the ring's events
}

// item is one delivery in a ring; w is set for PublishWait.
type item[T any] struct {
	ev Event[T]
	w  *waiter
}

var partitionSeed = maphash.MakeSeed()

// runLength is how many events a lone worker takes from its ring at once.
const runLength = 64

// newSubscriber makes the subscription of h on topic as the typed layer
// sees it; the engine's subscribe then gives it its queue (makeLanes, or a
// remoteSub).
func newSubscriber[T any](b *Bus, topic string, h Handler[T], cfg subConfig, where string) (*subscriber[T], error) {
	s := &subscriber[T]{
		Subscription: &Subscription{
			bus: b, topic: topic, where: where, name: cfg.name,
			sync: cfg.sync, concurrency: cfg.concurrency, policy: cfg.policy,
			maxAttempts: cfg.maxAttempts, backoff: cfg.backoff, replay: cfg.replay,
			gone: make(chan struct{}), done: make(chan struct{}),
		},
		handler: h,
	}
	if s.name == "" {
		s.name = funcName(h)
	}
	if cfg.partition != nil {
		key, ok := cfg.partition.(func(T) string)
		if !ok {
			var zero T
			return nil, fmt.Errorf("%w: PartitionBy takes a func(%T) string on topic %s, not a %T", ErrInvalidOption, zero, topic, cfg.partition)
		}
		s.key = key
	}
	s.engine = s
	if cfg.sync {
		close(s.done)
	}
	return s, nil
}

// makeLanes gives an asynchronous subscription of the ring engine its
// lanes: rings of their own, or places in the topic's shared ring, which
// joinShared takes under the topic's lock.
func (s *subscriber[T]) makeLanes(cfg subConfig) {
	b, topic := s.bus, s.topic
	lanes, perLane, size := 1, cfg.concurrency, cfg.queueSize
	if s.key != nil && cfg.concurrency > 1 {
		lanes, perLane, size = cfg.concurrency, 1, (cfg.queueSize+cfg.concurrency-1)/cfg.concurrency
	}
	batch := runLength
	if perLane > 1 || cfg.policy == DropOldest {
		batch = 1 // other workers share the lane; DropOldest evicts from the ring
	}
	shared := topic != "*" && s.key == nil && (cfg.policy == Block || cfg.policy == Reject) && size <= b.cfg.queueSize
	for i := range lanes {
		l := &laneT[T]{lane: &lane{sub: s.Subscription, index: i, size: size, workers: perLane, batch: batch}, shared: shared}
		if !shared {
			l.ring = ring.New[item[T]](size)
			l.setGroup(l.ring.Add(size, perLane, batch))
		}
		s.lanes = append(s.lanes, l)
		s.Subscription.lanes = append(s.Subscription.lanes, l.lane)
	}
}

// setGroup binds the lane to its group and makes a worker per ring worker.
func (l *laneT[T]) setGroup(g *ring.Group[item[T]]) {
	l.group = g
	l.full = g.Full
	l.length = func() (int, int, int) { return g.Len(), g.Cap(), g.HighWater() }
	l.ws = nil
	for _, rw := range g.Workers() {
		l.ws = append(l.ws, &worker{sub: l.sub, lane: l.lane, progress: rw.Progress, asleep: rw.Asleep})
	}
}

// joinShared gives the shared lanes their group in the topic's ring. The
// caller holds the topic's lock.
func (s *subscriber[T]) joinShared(r func() *ring.Ring[item[T]]) {
	for _, l := range s.lanes {
		if l.shared {
			l.ring = r()
			l.setGroup(l.ring.Add(l.size, l.workers, l.batch))
		}
	}
}

// laneOf picks the lane of an event.
func (s *subscriber[T]) laneOf(ev *Event[T]) *laneT[T] {
	if len(s.lanes) < 2 {
		return s.lanes[0]
	}
	return s.lanes[maphash.String(partitionSeed, s.key(ev.Payload))%uint64(len(s.lanes))]
}

// start launches the workers in the bus's errgroup.
func (s *subscriber[T]) start() {
	n := 0
	for _, l := range s.lanes {
		n += len(l.ws)
	}
	s.running.Store(int32(n))
	for _, l := range s.lanes {
		for i, rw := range l.group.Workers() {
			w := l.ws[i]
			rw.Idle = w.flush
			ctx := workerContext(s.bus.handlerCtx, w)
			var replay []item[T]
			if i == 0 {
				replay, l.replay = l.replay, nil
			}
			s.bus.workers.Go(func() error {
				defer s.exit(w)
				s.run(ctx, w, rw, replay)
				return nil
			})
		}
	}
}

func (s *subscriber[T]) detach() {
	s.listMu.Lock()
	s.list.Store(s.list.Load().without(s))
	s.listMu.Unlock()
}

// closeQueue tells the workers that nothing more comes; they drain and exit.
func (s *subscriber[T]) closeQueue() {
	s.prodMu.Lock()
	defer s.prodMu.Unlock()
	for _, l := range s.lanes {
		if !l.shared {
			l.ring.Close()
		}
	}
}

// drain returns at once: closeQueue lets the workers drain their rings.
func (s *subscriber[T]) drain(ctx context.Context) error { return nil }

// deliveries sums what the workers counted; a Sync subscription's calls
// are in its Subscription.calls.
func (s *subscriber[T]) deliveries() (dispatched, delivered uint64) {
	for _, l := range s.lanes {
		for _, w := range l.ws {
			dispatched += w.pub.dispatched.Load()
			delivered += w.pub.delivered.Load()
		}
	}
	return dispatched, delivered
}

// leaveRings takes back what the lanes had not handed out, settling
// PublishWait waiters, and stops the lanes' groups. Events count as
// undelivered when the bus gave up on them (Close past its deadline), not
// when the subscription left.
func (s *subscriber[T]) leaveRings(undelivered bool) {
	if s.sync {
		return
	}
	s.prodMu.Lock()
	defer s.prodMu.Unlock()
	var err error
	for _, l := range s.lanes {
		n := l.group.Discard(func(it *item[T]) {
			if undelivered {
				err = s.abandoned(&it.ev)
			}
			if it.w != nil && it.w.selfLane != l.lane {
				it.w.finish(err)
			}
		})
		if undelivered {
			n += l.group.TakeRuns()
			s.c.undelivered.Add(uint64(n))
			if !l.shared {
				l.ring.Close()
			}
			continue
		}
		l.ring.Remove(l.group)
	}
}

func (s *subscriber[T]) discard(undelivered bool) error {
	s.leaveRings(undelivered)
	return nil
}

func (s *subscriber[T]) abandoned(ev *Event[T]) error {
	return fmt.Errorf("eventbus: %s: event %s abandoned: %w", s.Subscription, ev.ID, ErrClosed)
}
