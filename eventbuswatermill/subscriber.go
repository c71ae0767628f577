package eventbuswatermill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/quantumtrader/eventbus"
)

// ErrNacked is the error a Subscriber's handler returns to the bus for a
// message its consumer nacked; the bus then retries the event as
// SubscriberConfig says. It shows in the bus's logs, in the
// *eventbus.HandlerError given to eventbus.WithErrorHandler (test it with
// errors.Is) and in the dead letter of a message nacked MaxAttempts times.
var ErrNacked = errors.New("eventbuswatermill: message nacked")

// errGone ends a delivery whose subscription on the bus ended before the
// message was acknowledged.
var errGone = errors.New("eventbuswatermill: subscription ended before the message was acknowledged")

// SubscriberConfig configures a Subscriber. The zero value is the default:
// no consumer group, one message in flight per topic, and a nacked message
// delivered again at once, without limit.
type SubscriberConfig struct {
	// ConsumerGroup, if set, makes each Subscribe one member of the
	// eventbus.Group of this name: the members, in this process or any
	// other, share the topic's events, and the group's durable consumer on
	// the broker keeps them while no member runs. The bus must have a
	// Transport: on the in-memory bus, Subscribe fails with an error
	// wrapping eventbus.ErrInvalidOption and errors.ErrUnsupported.
	ConsumerGroup string

	// Concurrency is how many messages of a topic may be handed out and not
	// yet acknowledged at once (eventbus.Concurrency; for a ConsumerGroup,
	// in the whole group). 0 means 1: the next message is handed out only
	// after the previous one is acked, and messages arrive in publish order,
	// a nacked one first again. It must not be negative.
	Concurrency int

	// MaxAttempts bounds how many times a message is handed out: after its
	// MaxAttempts-th Nack the bus dead-letters it (eventbus.Retry,
	// eventbus.DeadLetters). 0 means no bound, as Watermill expects of a
	// Nack; Watermill's poison-queue middleware is the usual bound then.
	// It must not be negative.
	MaxAttempts int

	// NackBackoff is how long the bus waits after the attempt-th delivery
	// of a message was nacked before it hands the message out again
	// (Retry's backoff; eventbus.ExponentialBackoff is one). nil: no wait.
	NackBackoff func(attempt int) time.Duration
}

// Subscriber is a Watermill message.Subscriber that receives from an
// eventbus.Bus; see the package documentation for how its subscriptions
// map onto the bus. It is safe for concurrent use.
type Subscriber struct {
	bus   *eventbus.Bus
	group string
	opts  []eventbus.SubOption

	mu        sync.Mutex
	closed    bool
	consumers map[string]*consumer   // without a group: one per topic, until Close
	members   map[*consumer]struct{} // with a group: one per Subscribe, until its ctx ends
	closing   chan struct{}          // closed by Close: every channel closes
	watchers  sync.WaitGroup         // one per Subscribe channel
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber that receives from bus as cfg says.
// The bus stays the caller's: closing the Subscriber does not close it,
// and the Subscriber must be closed before the bus. An invalid cfg, or a
// nil bus, is an error wrapping eventbus.ErrInvalidOption.
func NewSubscriber(bus *eventbus.Bus, cfg SubscriberConfig) (*Subscriber, error) {
	switch {
	case bus == nil:
		return nil, fmt.Errorf("eventbuswatermill: NewSubscriber with a nil bus: %w", eventbus.ErrInvalidOption)
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("eventbuswatermill: SubscriberConfig.Concurrency %d is negative: %w", cfg.Concurrency, eventbus.ErrInvalidOption)
	case cfg.MaxAttempts < 0:
		return nil, fmt.Errorf("eventbuswatermill: SubscriberConfig.MaxAttempts %d is negative: %w", cfg.MaxAttempts, eventbus.ErrInvalidOption)
	}
	opts := []eventbus.SubOption{
		eventbus.Concurrency(cmp.Or(cfg.Concurrency, 1)),
		eventbus.Retry(cmp.Or(cfg.MaxAttempts, math.MaxInt), cfg.NackBackoff),
	}
	if cfg.ConsumerGroup != "" {
		opts = append(opts, eventbus.Group(cfg.ConsumerGroup))
	}
	return &Subscriber{
		bus: bus, group: cfg.ConsumerGroup, opts: opts,
		consumers: map[string]*consumer{},
		members:   map[*consumer]struct{}{},
		closing:   make(chan struct{}),
	}, nil
}

// Subscribe returns a channel of the messages of the bus topic named
// topicName. Each message must be acked or nacked: with Concurrency 1 the
// next one waits for it. The channel is closed when ctx ends or the
// Subscriber closes; the message's Context derives from ctx.
//
// Without a ConsumerGroup, the first Subscribe or SubscribeInitialize of a
// topic subscribes the Subscriber to it on the bus until Close, and
// Subscribe calls on one topic share its messages. With one, each
// Subscribe is a member of the group until its channel closes. Subscribing
// costs a round trip to the broker on a transport.
//
// A topic that is not a valid bus topic name is an error wrapping
// eventbus.ErrInvalidTopic; after Close, one wrapping eventbus.ErrClosed.
func (s *Subscriber) Subscribe(ctx context.Context, topicName string) (<-chan *message.Message, error) {
	t, err := topic(s.bus, topicName)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSubscriberClosed
	}
	var c *consumer
	member := s.group != ""
	if member {
		c, err = s.subscribe(t)
		if err == nil {
			s.members[c] = struct{}{}
		}
	} else {
		c, err = s.consumer(t)
	}
	if err != nil {
		return nil, err
	}
	o := &output{ctx: ctx, ch: make(chan *message.Message)}
	c.add(o)
	s.watchers.Add(1)
	go s.watch(c, o, member)
	return o.ch, nil
}

// SubscribeInitialize makes sure that the messages published on the topic
// from now on are kept for this Subscriber's next Subscribe: without a
// ConsumerGroup it subscribes the Subscriber to the topic on the bus (until
// Close), as the first Subscribe would; with one it creates the group's
// durable consumer on the broker, and leaves it there.
func (s *Subscriber) SubscribeInitialize(topicName string) error {
	t, err := topic(s.bus, topicName)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSubscriberClosed
	}
	if s.group == "" {
		_, err = s.consumer(t)
		return err
	}
	c, err := s.subscribe(t)
	if err != nil {
		return err
	}
	return c.end()
}

// Close closes every channel the Subscriber returned and ends its
// subscriptions on the bus: events the bus still held for them are
// discarded in memory and stay with a durable consumer on a transport (an
// ephemeral one is deleted). A message handed out and not yet acked is
// dropped in memory, and delivered again by the broker on a transport.
// When Close returns, every channel is closed. It returns the errors of
// ending the subscriptions, if any. Calling it again does nothing, and
// returns nil.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cs := make([]*consumer, 0, len(s.consumers)+len(s.members))
	for _, c := range s.consumers {
		cs = append(cs, c)
	}
	for c := range s.members {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.end())
	}
	close(s.closing)
	s.watchers.Wait()
	return errors.Join(errs...)
}

var errSubscriberClosed = fmt.Errorf("eventbuswatermill: subscriber closed: %w", eventbus.ErrClosed)

// consumer returns the Subscriber's consumer of t, subscribing on first
// use. The caller holds s.mu.
func (s *Subscriber) consumer(t *eventbus.Topic[Message]) (*consumer, error) {
	if c, ok := s.consumers[t.Name()]; ok {
		return c, nil
	}
	c, err := s.subscribe(t)
	if err != nil {
		return nil, err
	}
	s.consumers[t.Name()] = c
	return c, nil
}

// subscribe makes a consumer with a subscription of its own on t.
func (s *Subscriber) subscribe(t *eventbus.Topic[Message]) (*consumer, error) {
	c := &consumer{changed: make(chan struct{}), gone: make(chan struct{})}
	sub, err := t.Subscribe(c.handle, s.opts...)
	if err != nil {
		return nil, fmt.Errorf("eventbuswatermill: subscribing to %q: %w", t.Name(), err)
	}
	c.sub = sub
	return c, nil
}

// watch closes o when its ctx ends or the Subscriber closes, and ends a
// group member's consumer with it.
func (s *Subscriber) watch(c *consumer, o *output, member bool) {
	defer s.watchers.Done()
	select {
	case <-o.ctx.Done():
	case <-s.closing:
	}
	c.remove(o)
	if member {
		_ = c.end() // the bus logs a failure; Close reports its own
		s.mu.Lock()
		delete(s.members, c)
		s.mu.Unlock()
	}
	o.close()
}

// output is one Subscribe channel.
type output struct {
	ctx context.Context // Subscribe's
	ch  chan *message.Message

	// mu orders sends against closing ch: a handler offering a message
	// holds it shared, and checks closed; close takes it exclusively, once
	// the consumer no longer lists o, so offers end at once.
	mu     sync.RWMutex
	closed bool
}

func (o *output) close() {
	o.mu.Lock()
	o.closed = true
	close(o.ch)
	o.mu.Unlock()
}

// consumer is one subscription on the bus and the Subscribe channels its
// handler hands messages to.
type consumer struct {
	sub *eventbus.Subscription

	mu      sync.Mutex
	outs    []*output     // replaced, never changed in place: handlers keep snapshots
	changed chan struct{} // closed, and replaced, when outs changes

	endOnce sync.Once
	endErr  error
	gone    chan struct{} // closed once sub is unsubscribed: handlers give up
}

func (c *consumer) add(o *output) {
	c.mu.Lock()
	c.outs = append(slices.Clip(c.outs), o)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *consumer) remove(o *output) {
	c.mu.Lock()
	c.outs = slices.DeleteFunc(slices.Clone(c.outs), func(x *output) bool { return x == o })
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// end unsubscribes the consumer, then releases its handlers: unsubscribed
// first, so that the bus does not retry what they give up (in memory) and
// the broker gives it to the next consumer (on a transport).
func (c *consumer) end() error {
	c.endOnce.Do(func() {
		c.endErr = c.sub.Unsubscribe()
		close(c.gone)
	})
	return c.endErr
}

// handle is the consumer's eventbus handler: it hands ev to one of the
// channels being read, as a new message, and returns when that message is
// acked (nil) or nacked (ErrNacked), or when the consumer ends.
func (c *consumer) handle(ctx context.Context, ev eventbus.Event[Message]) error {
	for {
		c.mu.Lock()
		outs, changed := c.outs, c.changed
		c.mu.Unlock()
		msg, cancel, err := c.offer(ctx, &ev, outs, changed)
		if err != nil {
			return err
		}
		if msg != nil {
			return c.await(ctx, msg, cancel)
		}
	}
}

// offer hands ev to whichever of outs is read first. It returns a nil
// message, to be called again, when the channels change meanwhile.
func (c *consumer) offer(ctx context.Context, ev *eventbus.Event[Message], outs []*output, changed <-chan struct{}) (*message.Message, context.CancelFunc, error) {
	live := make([]*output, 0, len(outs))
	for _, o := range outs {
		o.mu.RLock()
		if o.closed {
			o.mu.RUnlock()
			continue
		}
		live = append(live, o)
	}
	defer func() {
		for _, o := range live {
			o.mu.RUnlock()
		}
	}()
	if len(live) == 1 { // the usual case, without reflection
		o := live[0]
		msg, cancel := toMessage(o.ctx, ctx, ev)
		select {
		case o.ch <- msg:
			return msg, cancel, nil
		case <-changed:
			cancel()
			return nil, nil, nil
		case <-c.gone:
			cancel()
			return nil, nil, errGone
		case <-ctx.Done():
			cancel()
			return nil, nil, ctx.Err()
		}
	}
	// Each channel is offered a message of its own, whose Context derives
	// from that channel's Subscribe ctx.
	cases := make([]reflect.SelectCase, 0, len(live)+3)
	msgs := make([]*message.Message, len(live))
	cancels := make([]context.CancelFunc, len(live))
	for i, o := range live {
		msgs[i], cancels[i] = toMessage(o.ctx, ctx, ev)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectSend, Chan: reflect.ValueOf(o.ch), Send: reflect.ValueOf(msgs[i])})
	}
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(changed)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.gone)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
	)
	chosen, _, _ := reflect.Select(cases)
	for i, cancel := range cancels {
		if i != chosen {
			cancel()
		}
	}
	switch chosen - len(live) {
	case 0:
		return nil, nil, nil
	case 1:
		return nil, nil, errGone
	case 2:
		return nil, nil, ctx.Err()
	}
	return msgs[chosen], cancels[chosen], nil
}

// await waits until msg is settled, and cancels its Context then.
func (c *consumer) await(ctx context.Context, msg *message.Message, cancel context.CancelFunc) error {
	defer cancel()
	select {
	case <-msg.Acked():
		return nil
	case <-msg.Nacked():
		return ErrNacked
	case <-c.gone:
	case <-ctx.Done():
	}
	select {
	case <-msg.Acked(): // an ack that came with the end still counts
		return nil
	default:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errGone
	}
}
