package eventbus

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quantumtrader/eventbus/internal/hist"
	"github.com/quantumtrader/eventbus/internal/queue"
)

// Subscription is one handler's registration on a topic (or, from
// SubscribeAll, on every topic). Its methods are safe for concurrent use.
type Subscription struct {
	bus         *Bus
	id          uint64
	name        string
	topic       string // "*" for SubscribeAll
	where       string // file:line of the Subscribe call
	sync        bool
	concurrency int
	policy      FullPolicy
	maxAttempts int
	backoff     func(attempt int) time.Duration
	replay      bool
	c           counters
	latency     hist.Histogram

	lanes    []*lane // the buffers and workers of an asynchronous subscription
	syncSlot worker  // the stall-watching slot of a Sync one
	running  atomic.Int32
	done     chan struct{} // closed when the last worker has exited
	gone     chan struct{} // closed by Unsubscribe: retry waits end

	// gate orders deliveries against Unsubscribe. Bit 0 is set by
	// Unsubscribe; each delivery adds entering while it checks that bit and
	// then trades it for running until its handler returns. Unsubscribe waits
	// only for the entering ones, so it never waits for a handler (it may be
	// called from that handler), yet none starts after it returns.
	gate   atomic.Int64
	folded atomic.Bool // the counters moved into the topic's retired sum

	unsubscribe sync.Once
	typed       typedSub // the generic half: queues and list membership
}

const (
	gateClosed   = 1
	gateEntering = 1 << 1
	gateRunning  = 1 << 24
)

// typedSub is what a Subscription needs from its generic subscriber[T].
type typedSub interface {
	detach()                  // leave the topic's list: nothing more is queued
	closeQueue()              // no more events; the workers drain and exit
	discard(undelivered bool) // empty the queues, resolving their waiters
	queueLen() (n, cap, hw int)
}

// enter reports whether a delivery may start; if it returns true the caller
// must call leave when the delivery is over.
func (s *Subscription) enter() bool {
	if s.gate.Add(gateEntering)&gateClosed != 0 {
		s.gate.Add(-gateEntering)
		return false
	}
	s.gate.Add(gateRunning - gateEntering)
	return true
}

func (s *Subscription) leave() {
	if s.gate.Add(-gateRunning) == gateClosed {
		s.retire()
	}
}

// exit is called by each worker goroutine as it returns.
func (s *Subscription) exit() {
	if s.running.Add(-1) == 0 {
		close(s.done)
	}
}

func (s *Subscription) allWorkers() []*worker {
	if s.sync {
		return []*worker{&s.syncSlot}
	}
	var ws []*worker
	for _, l := range s.lanes {
		ws = append(ws, l.workers...)
	}
	return ws
}

// Unsubscribe removes the subscription. Events still in its buffer are
// discarded, and no delivery starts after Unsubscribe returns; a delivery
// already under way finishes its current attempt but is not retried
// (Unsubscribe does not wait for it, so a handler may unsubscribe itself).
// Calling it again does nothing. It returns nil for in-memory subscriptions.
func (s *Subscription) Unsubscribe() error {
	s.unsubscribe.Do(func() {
		s.typed.detach()
		s.gate.Add(gateClosed)
		close(s.gone)
		for s.gate.Load()&(gateRunning-gateEntering) != 0 {
			runtime.Gosched() // a delivery is between its check and its start: a few instructions
		}
		s.typed.discard(false)
		s.bus.forget(s)
		if s.gate.Load() == gateClosed {
			s.retire()
		}
	})
	return nil
}

// retire moves the counters of an unsubscribed subscription, whose last
// delivery has finished, into its topic's totals; it runs once.
func (s *Subscription) retire() {
	if s.folded.CompareAndSwap(false, true) {
		r := s.bus.retired(s.topic)
		r.c.fold(s.c.load())
		lat := s.latency.Snapshot()
		r.mu.Lock()
		r.latency.Add(lat)
		r.mu.Unlock()
	}
}

// Name returns the subscription's name (see the Name option).
func (s *Subscription) Name() string { return s.name }

// Topic returns the topic name, or "*" for a SubscribeAll subscription.
func (s *Subscription) Topic() string { return s.topic }

// Stats returns a snapshot of the subscription's counters.
func (s *Subscription) Stats() SubscriptionStats {
	t := s.c.load()
	n, c, hw := s.typed.queueLen()
	lat := s.latency.Snapshot()
	return SubscriptionStats{
		Name: s.name, Topic: s.topic, Where: s.where,
		Sync: s.sync, Concurrency: s.concurrency, Policy: s.policy,
		Dispatched: t.dispatched, Delivered: t.delivered, Errors: t.errors,
		Panics: t.panics, Retries: t.retries, Dropped: t.dropped,
		DeadLettered: t.deadLettered, Undelivered: t.undelivered,
		QueueLen: n, QueueCap: c, HighWater: hw,
		LatencyP50: lat.Quantile(0.50), LatencyP99: lat.Quantile(0.99),
	}
}

func (s *Subscription) String() string {
	return fmt.Sprintf("subscription %s on %s (%s)", s.name, s.topic, s.where)
}

// SubscribeAll subscribes h to every topic of the bus, those that exist now
// and those created later. The handler receives each event with its typed
// payload in Event[any].Payload, so a type switch recovers it. Each event is
// boxed once for all SubscribeAll subscriptions, which costs an allocation
// per event for payloads larger than a pointer. The options are those of
// Topic.Subscribe (PartitionBy takes a func(any) string).
func SubscribeAll(b *Bus, h Handler[any], opts ...SubOption) (*Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: SubscribeAll", ErrNilHandler)
	}
	cfg, err := b.subConfig(opts)
	if err != nil {
		return nil, err
	}
	s, err := newSubscriber(b, "*", h, cfg, callerLine(1))
	if err != nil {
		return nil, err
	}
	s.list, s.listMu = &b.all, &b.mu
	err = attach(b, s, func() []Event[any] {
		// Under b.mu. For Replay, every topic's lock is held while the
		// subscription joins, so each topic's latest event is taken
		// atomically with it.
		topics := b.order
		if s.replay {
			for _, t := range topics {
				t.lock()
			}
			defer func() {
				for _, t := range topics {
					t.unlock()
				}
			}()
		}
		b.all.Store(b.all.Load().with(s))
		if !s.replay {
			return nil
		}
		var latest []Event[any]
		for _, t := range topics {
			if ev, ok := t.latestLocked(); ok {
				latest = append(latest, ev)
			}
		}
		return s.replayLocked(latest)
	})
	if err != nil {
		return nil, err
	}
	return s.Subscription, nil
}

// replayLocked queues the replayed events of a new asynchronous subscription
// while the caller holds the locks that make it atomic, or returns them for
// a Sync one to be delivered once the locks are released.
func (s *subscriber[T]) replayLocked(evs []Event[T]) []Event[T] {
	if s.sync {
		return evs
	}
	for i := range evs {
		q := s.qs[s.laneOf(&evs[i])]
		if r, _ := q.Reserve(queue.DropNewest); r != queue.Reserved {
			s.c.dropped.Add(1) // more topics to replay than room in the buffer
			continue
		}
		q.Commit(item[T]{ev: evs[i]})
	}
	return nil
}

// callerLine is the file:line skip frames above its caller.
func callerLine(skip int) string {
	_, file, line, ok := runtime.Caller(skip + 1)
	if !ok {
		return "unknown"
	}
	return fmt.Sprintf("%s:%d", file, line)
}

// funcName is a handler's function name without its package path, e.g.
// "(*Orchestrator).onPolicy-fm", to name subscriptions that have no Name.
func funcName(f any) string {
	fn := runtime.FuncForPC(reflect.ValueOf(f).Pointer())
	if fn == nil {
		return "handler"
	}
	name := fn.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// workerKey marks a handler's ctx with the worker running it, so a publish
// from inside a handler knows who is waiting on whom.
type workerKey struct{}

func workerContext(parent context.Context, w *worker) context.Context {
	return context.WithValue(parent, workerKey{}, w)
}
