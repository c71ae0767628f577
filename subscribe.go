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
)

// Subscription is one handler's registration on a topic (or, from
// SubscribeAll, on every topic). Its methods are safe for concurrent use.
type Subscription struct {
	bus         *Bus
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

	lanes   []*lane // the buffers and workers of an asynchronous subscription (ring engine)
	running atomic.Int32
	done    chan struct{} // closed when the last worker has exited
	gone    chan struct{} // closed by Unsubscribe: retry waits end

	// gate orders deliveries against Unsubscribe. Unsubscribe sets
	// gateClosed; every delivery loads the gate first and does not start if
	// it is set: a delivery that saw it clear started before Unsubscribe
	// returned, none starts after. Unsubscribe never waits for a handler,
	// so a handler may unsubscribe itself. retire sets gateFolded, once,
	// when it moves the counts into the topic's, and a count made later
	// sees the bit and moves itself (foldIfRetired). gateReplaying is set while a new Sync subscription with
	// Replay is handed the latest event: a publisher that reaches it
	// meanwhile waits for replayed (see awaitReplay), so the replayed event
	// comes first.
	gate     atomic.Int64
	replayed chan struct{} // closed when a Sync Replay has been delivered
	// retiring is set by Unsubscribe under the retiredStats' lock: from
	// then on Stats counts the subscription among the retiring, not the live.
	retiring bool

	calls  syncCounts // a Sync subscription's calls (see countCall)
	folded Counts     // what retire and the late counts after it moved into the topic's retired totals; under their lock

	unsubscribe sync.Once
	engine      subEngine // its engine's half: a *subscriber[T] or a *remoteSub[T]
}

const (
	gateClosed    = 1
	gateFolded    = 1 << 1
	gateReplaying = 1 << 2
)

// exit is called by each worker goroutine as it returns.
func (s *Subscription) exit(w *worker) {
	if w != nil {
		w.flush()
	}
	if s.running.Add(-1) == 0 {
		close(s.done)
		if s.gate.Load()&gateClosed != 0 {
			s.retire()
		}
	}
}

// Unsubscribe removes the subscription. Events still in its buffer are
// discarded, and no delivery starts after Unsubscribe returns; a delivery
// already under way finishes its current attempt but is not retried
// (Unsubscribe does not wait for it, so a handler may unsubscribe itself).
// Calling it again does nothing, and returns nil.
//
// On a bus with a Transport, Unsubscribe also stops the subscription's
// consumers on the broker, which takes a round trip: an ephemeral one is
// deleted, once the delivery under way (if any) is settled; a durable one
// (Name, Group) stays, and keeps the events not yet handled for the next
// subscription of that name. It returns the error of
// stopping them, if any; in memory it always returns nil.
func (s *Subscription) Unsubscribe() error {
	var err error
	s.unsubscribe.Do(func() {
		// Retiring first, then off the list: Stats counts it in one place
		// or the other, never in neither (see retiredStats.load).
		r := s.bus.retired(s.topic)
		r.mu.Lock()
		r.retiring[s] = struct{}{}
		s.retiring = true
		r.mu.Unlock()
		s.engine.detach()
		s.gate.Add(gateClosed)
		close(s.gone)
		err = s.engine.discard(false)
		s.bus.forget(s)
		if s.sync || s.running.Load() == 0 {
			s.retire()
		}
	})
	return err
}

// Name returns the subscription's name (see the Name option).
func (s *Subscription) Name() string { return s.name }

// Topic returns the topic name, or "*" for a SubscribeAll subscription.
func (s *Subscription) Topic() string { return s.topic }

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
	s.list, s.listMu, s.prodMu = &b.all, &b.mu, &sync.Mutex{}
	if err := b.subscribeAll(s, cfg); err != nil {
		return nil, err
	}
	return s.Subscription, nil
}

// subscribeAllRings is the ring engine's half of SubscribeAll.
func subscribeAllRings(s *subscriber[any], cfg subConfig) error {
	b := s.bus
	if !s.sync {
		s.makeLanes(cfg)
	}
	return attach(b, s, func() []Event[any] {
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
}

// replayLocked hands the replayed events to a new subscription while the
// caller holds the locks that make it atomic: an asynchronous one gets them
// before anything from its ring; a Sync one gets them back, to deliver once
// the locks are released.
func (s *subscriber[T]) replayLocked(evs []Event[T]) []Event[T] {
	if s.sync {
		if len(evs) > 0 {
			s.replayed = make(chan struct{})
			s.gate.Or(gateReplaying) // before the subscription is in its list
		}
		return evs
	}
	for i := range evs {
		l := s.laneOf(&evs[i])
		l.replay = append(l.replay, item[T]{ev: evs[i]})
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

// Subscribe registers h for the topic's events. By default h runs in a
// goroutine of its own, fed by a buffer of WithQueueSize events, one event at
// a time in publish order; the options change that (Sync, Queue,
// Concurrency, OnFull, Name, Retry, Replay, PartitionBy). It returns an
// error wrapping ErrNilHandler for a nil h, ErrInvalidOption for a bad
// option, and ErrClosed once Close has begun. On a bus with a Transport it
// makes or joins the subscription's consumer on the broker (see
// WithTransport), and returns the error if it cannot.
func (t *Topic[T]) Subscribe(h Handler[T], opts ...SubOption) (*Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: Subscribe on %s", ErrNilHandler, t.name)
	}
	cfg, err := t.bus.subConfig(opts)
	if err != nil {
		return nil, err
	}
	s, err := newSubscriber(t.bus, t.name, h, cfg, callerLine(1))
	if err != nil {
		return nil, err
	}
	s.list, s.listMu, s.prodMu = &t.subs, &t.mu, &t.mu
	if err := t.engine.subscribe(s, cfg); err != nil {
		return nil, err
	}
	return s.Subscription, nil
}

// subscribe gives s its lanes, joins it to the topic and starts its
// workers; a Sync one with Replay is handed the latest event.
func (t *memTopic[T]) subscribe(s *subscriber[T], cfg subConfig) error {
	if !s.sync {
		s.makeLanes(cfg)
	}
	return attach(t.bus, s, func() []Event[T] {
		t.mu.Lock()
		defer t.mu.Unlock()
		s.joinShared(t.sharedRing)
		t.subs.Store(t.subs.Load().with(s))
		if !s.replay || !t.hasLatest {
			return nil
		}
		return s.replayLocked([]Event[T]{t.latest})
	})
}
