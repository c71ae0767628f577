package eventbus

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/quantumtrader/eventbus/internal/hist"
	"github.com/quantumtrader/eventbus/internal/idgen"
	"github.com/quantumtrader/eventbus/internal/topicname"
)

// Topic is a named stream of events whose payloads have type T. Get one with
// NewTopic or MustTopic; its methods are safe for concurrent use.
type Topic[T any] struct {
	topicCore
	validate func(*T) error // nil unless T has a Validate() error method
	engine   topicEngine[T] // how its events travel (see engine.go)
	subs     atomic.Pointer[subList[T]]

	ids       *idgen.Source
	closed    bool // Close has begun: only internal publishes pass
	latest    Event[T]
	hasLatest bool
	published uint64
	noSubs    uint64
}

// topicCore is the part of a topic the Bus handles without knowing T.
type topicCore struct {
	bus  *Bus
	name string
	typ  reflect.Type

	// mu is the producer lock of the topic's rings. Holding it, a publisher
	// stamps the event's ID, checks every subscription has room, and writes
	// the event, so every subscription sees the events of concurrent
	// publishers in the same order, a Reject is all or nothing, and Replay
	// takes the latest event atomically with the subscription. Handlers
	// never run under it.
	mu       sync.Mutex
	inflight atomic.Int64 // publishes running Sync handlers or waiting for the Transport, for Close
	retired  retiredStats // what its unsubscribed subscriptions counted
}

// topicEntry is a registered topic of any payload type.
type topicEntry interface {
	core() *topicCore
	Stats() TopicStats
	shut()        // Close: no more publishes but internal ones
	closeQueues() // Close: nothing more is queued; the delivery goroutines drain and exit
	lock()
	unlock()
	latestLocked() (Event[any], bool)
	publishedCount() uint64
	decodeAny(env *Envelope) (Event[any], error)
}

func (c *topicCore) core() *topicCore { return c }

// NewTopic returns the topic of bus b with the given name and payload type T,
// creating it on first use. Asking again with the same name and T returns the
// same *Topic; a different T is an error wrapping ErrTopicType. The name is
// one or more dot-separated tokens of letters, digits, '_' and '-', at most
// 255 bytes (it doubles as a NATS subject); anything else wraps ErrInvalidTopic.
//
// On a bus with a Transport, a new topic gets a consumer on the broker for
// each SubscribeAll subscription of the bus; if one cannot be made,
// NewTopic returns the error and creates nothing.
func NewTopic[T any](b *Bus, name string) (*Topic[T], error) {
	if err := checkTopicName(name); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.topics[name]; ok {
		if t, ok := e.(*Topic[T]); ok {
			return t, nil
		}
		return nil, fmt.Errorf("%w: %q carries %v, not %v", ErrTopicType, name, e.core().typ, reflect.TypeFor[T]())
	}
	t := &Topic[T]{
		topicCore: topicCore{bus: b, name: name, typ: reflect.TypeFor[T](), retired: retiredStats{retiring: map[*Subscription]struct{}{}}},
		ids:       b.ids.Derive(uint64(len(b.order))),
		validate:  validatorOf[T](),
		closed:    b.closed.Load(),
	}
	t.engine = newTopicEngine(t)
	if err := b.listenNew(name, t.decodeAny); err != nil {
		return nil, err
	}
	b.topics[name] = t
	b.order = append(b.order, t)
	return t, nil
}

// MustTopic is like NewTopic but panics where NewTopic returns an error. It
// suits package-level topic accessors whose name and type are constants.
func MustTopic[T any](b *Bus, name string) *Topic[T] {
	t, err := NewTopic[T](b, name)
	if err != nil {
		panic(err)
	}
	return t
}

// Name returns the topic's name.
func (t *Topic[T]) Name() string { return t.name }

// Latest returns the last event published on the topic, and false if there
// has been none. It is the retained value a late subscriber can start from.
func (t *Topic[T]) Latest() (Event[T], bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.latest, t.hasLatest
}

// Stats returns a snapshot of the topic's counters and subscriptions.
func (t *Topic[T]) Stats() TopicStats {
	t.mu.Lock()
	ts := TopicStats{Name: t.name, Type: t.typ.String(), Published: t.published, NoSubscribers: t.noSubs}
	t.mu.Unlock()
	sum, lat := t.retired.load(t.subs.Load().each, func(s *Subscription) (Counts, hist.Snapshot) {
		ss, sl := s.stats()
		ts.Subscriptions = append(ts.Subscriptions, ss)
		ts.QueueSize += ss.QueueLen
		ts.HighWater = max(ts.HighWater, ss.HighWater)
		return ss.Counts, sl
	})
	ts.Counts = sum
	ts.LatencyP50, ts.LatencyP99 = lat.Quantile(0.50), lat.Quantile(0.99)
	return ts
}

func (t *Topic[T]) shut() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

func (t *Topic[T]) closeQueues() {
	t.mu.Lock()
	t.engine.closeQueues()
	t.mu.Unlock()
}

func (t *Topic[T]) publishedCount() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.published
}

func (t *Topic[T]) lock()   { t.mu.Lock() }
func (t *Topic[T]) unlock() { t.mu.Unlock() }

func (t *Topic[T]) latestLocked() (Event[any], bool) {
	if !t.hasLatest {
		return Event[any]{}, false
	}
	return boxed(&t.latest), true
}

// leave ends a publish that ran Sync handlers or went through the
// Transport.
func (c *topicCore) leave() {
	if c.inflight.Add(-1) == 0 && c.bus.closed.Load() {
		c.bus.nudgeQuiet()
	}
}

// busy reports whether a publish is under way on the topic.
func (c *topicCore) busy() bool {
	return c.inflight.Load() != 0
}

// quiesce waits until no publish is under way on the topic. It takes the
// wake-up channel before it looks: a publish that ends after the look
// closes that channel.
func (c *topicCore) quiesce(ctx context.Context) error {
	for {
		quiet := c.bus.quietCh()
		if !c.busy() {
			return nil
		}
		select {
		case <-quiet:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type validator interface{ Validate() error }

// validatorOf returns a function that validates a *T in place, or nil if T
// has no Validate method (with a value or a pointer receiver).
func validatorOf[T any]() func(*T) error {
	if !reflect.PointerTo(reflect.TypeFor[T]()).Implements(reflect.TypeFor[validator]()) {
		return nil
	}
	return func(p *T) error { return any(p).(validator).Validate() }
}

// invalid returns a *ValidationError if T has a Validate method and the
// payload fails it. It validates a copy, made only then: the address of the
// event itself must not reach an unknown function, or every event would be
// allocated on the heap.
func (t *Topic[T]) invalid(payload *T) error {
	if t.validate == nil {
		return nil
	}
	p := *payload
	if err := t.validate(&p); err != nil {
		return &ValidationError{Topic: t.name, Err: err}
	}
	return nil
}

// checkTopicName enforces the topic name rules of NewTopic.
func checkTopicName(name string) error {
	if err := topicname.Check(name); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidTopic, name, err)
	}
	return nil
}
