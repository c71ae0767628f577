package eventbus

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
	c           counters

	// gate orders deliveries against Unsubscribe. Bit 0 is set by
	// Unsubscribe; each delivery adds entering while it checks that bit and
	// then trades it for running until its handler returns. Unsubscribe waits
	// only for the entering ones, so it never waits for a handler (it may be
	// called from that handler), yet none starts after it returns.
	gate   atomic.Int64
	folded atomic.Bool // the counters moved into the topic's retired sum

	unsubscribe sync.Once
	typed       typedSub // the generic half: queue and list membership
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
	discard(undelivered bool) // empty the queue, resolving its waiters
	queueLen() (n, cap, hw int)
}

// enter reports whether a delivery may start; if it returns true the caller
// must call leave when the handler has returned.
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

// Unsubscribe removes the subscription. Events still in its buffer are
// discarded, and no delivery starts after Unsubscribe returns; a handler call
// already under way finishes normally (Unsubscribe does not wait for it, so a
// handler may unsubscribe itself). Calling it again does nothing. It returns
// nil for in-memory subscriptions.
func (s *Subscription) Unsubscribe() error {
	s.unsubscribe.Do(func() {
		s.typed.detach()
		s.gate.Add(gateClosed)
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
		s.bus.retired(s.topic).fold(s.c.load())
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
	return SubscriptionStats{
		Name: s.name, Topic: s.topic, Where: s.where,
		Sync: s.sync, Concurrency: s.concurrency, Policy: s.policy,
		Dispatched: t.dispatched, Delivered: t.delivered, Errors: t.errors,
		Panics: t.panics, Dropped: t.dropped, Undelivered: t.undelivered,
		QueueLen: n, QueueCap: c, HighWater: hw,
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
// Topic.Subscribe.
func SubscribeAll(b *Bus, h Handler[any], opts ...SubOption) (*Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: SubscribeAll", ErrNilHandler)
	}
	cfg, err := b.subConfig(opts)
	if err != nil {
		return nil, err
	}
	s := newSubscriber(b, "*", h, cfg, callerLine(2))
	s.list = &b.all
	s.listMu = &b.mu
	if err := attach(b, s, func() { b.all.Store(b.all.Load().with(s)) }); err != nil {
		return nil, err
	}
	return s.Subscription, nil
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

// workerKey marks a handler's ctx with the Subscription running it, so a
// publish from inside a handler knows who is waiting on whom.
type workerKey struct{}

func callerSub(ctx context.Context) *Subscription {
	s, _ := ctx.Value(workerKey{}).(*Subscription)
	return s
}
