package eventbus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/quantumtrader/eventbus/internal/clock"
)

// DefaultQueueSize is the capacity of an asynchronous subscription's buffer
// unless WithQueueSize or Queue says otherwise; it matches max_queue_size of
// the Python bus this library replaces.
const DefaultQueueSize = 10000

// DefaultWorkers is the default limit on the handlers PublishWait runs at once.
const DefaultWorkers = 4

// DefaultStallTimeout is how long a handler may run, or a publisher wait for
// room, before the bus logs it as stalled; see WithStallTimeout.
const DefaultStallTimeout = 5 * time.Second

// DefaultAckWait is how long the broker of a Transport waits for a handler
// to settle an event before it delivers the event again, unless WithAckWait
// says otherwise.
const DefaultAckWait = 30 * time.Second

// An Option configures a Bus; see New.
type Option func(*config) error

type config struct {
	queueSize    int
	workers      int
	stallTimeout time.Duration
	logger       *slog.Logger
	errorHandler func(*HandlerError)
	transport    Transport
	codec        Codec
	ackWait      time.Duration
	clock        func() time.Time
}

func defaultConfig() config {
	return config{
		queueSize: DefaultQueueSize, workers: DefaultWorkers, stallTimeout: DefaultStallTimeout,
		codec: JSON, ackWait: DefaultAckWait, clock: clock.Now,
	}
}

// WithClock sets the clock that stamps Event.Time (and the time part of
// Event.ID) of events published without one, in memory and over a
// transport alike; the bus converts what it returns to UTC. The default
// reads the wall clock once every 100 ms and extrapolates in between with
// the processor's counter, which costs a publish a fraction of time.Now:
// it follows the wall clock to within microseconds on a steady machine,
// but can be off by up to 100 ms after the host migrates a virtual
// machine or changes the counter's rate. Pass time.Now where every
// timestamp must be the wall clock's; tests pass a fixed clock. now must
// be safe for concurrent use and not nil.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidOption)
		}
		c.clock = now
		return nil
	}
}

// WithQueueSize sets the capacity of each asynchronous subscription's buffer
// (default DefaultQueueSize). A subscription can override it with Queue.
// n must be positive.
func WithQueueSize(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("%w: WithQueueSize(%d): the size must be positive", ErrInvalidOption, n)
		}
		c.queueSize = n
		return nil
	}
}

// WithWorkers limits how many Sync handlers PublishWait runs at once for one
// event (default DefaultWorkers). n must be positive.
func WithWorkers(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("%w: WithWorkers(%d): the limit must be positive", ErrInvalidOption, n)
		}
		c.workers = n
		return nil
	}
}

// WithLogger sets where the bus logs failed handlers and other trouble
// (default slog.Default()). l must not be nil. Its handler should not
// panic: the bus cannot report that panic anywhere, so it goes on to the
// publisher of a Sync delivery (after the publish is finished) or ends the
// program from an asynchronous delivery's goroutine.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithErrorHandler sets a function called with every failed handler call,
// after it has been counted and logged. It runs in the goroutine that ran the
// handler, so it must be quick and must not block; it may be called
// concurrently. A panic in f is recovered and logged. f must not be nil.
func WithErrorHandler(f func(*HandlerError)) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("%w: WithErrorHandler(nil)", ErrInvalidOption)
		}
		c.errorHandler = f
		return nil
	}
}

// WithStallTimeout sets how long a handler may run before the bus logs it,
// once, as stalled, with its subscription's name and the file:line where it
// subscribed; a publisher waiting that long for room in a full buffer is
// logged the same way (default DefaultStallTimeout). Nothing is interrupted:
// the report is for finding the handler that holds the system up. d must be
// positive.
func WithStallTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithStallTimeout(%v): the timeout must be positive", ErrInvalidOption, d)
		}
		c.stallTimeout = d
		return nil
	}
}

// WithTransport makes every topic of the bus publish and subscribe through t,
// a broker shared by many processes (see package natsbus), instead of
// delivering in memory. The typed API stays the same, with these
// differences:
//
//   - Publish returns once the broker has stored the event, and the broker
//     delivers it to every subscription of the topic in every process:
//     one consumer per subscription, or one per Group.
//   - Delivery is at least once: an event is acknowledged after its handler
//     returns nil, retried as Retry says, then dead-lettered; an event whose
//     process died before settling it is delivered again after the ack wait
//     (WithAckWait), so handlers must tolerate duplicates.
//   - Name makes a subscription durable: it resumes where it stopped, across
//     restarts. Group shares one durable consumer among processes. Without
//     either, a subscription starts with the events published after it.
//   - Replay delivers the last event the broker stored for the topic.
//   - Sync, OnFull other than Block, PartitionBy and PublishWait are not
//     available, as they need the publisher and the handlers in one
//     process; Queue does not apply, as the broker holds the events.
//   - SubscribeAll receives the topics this bus has made with NewTopic, now
//     and later, whoever publishes on them.
//   - Concurrency(n) lets n events of the subscription be in flight at
//     once (1 keeps publish order); for a Group, n bounds the whole group.
//   - Stats count what this process did. Dispatched counts an event the
//     first time the broker delivers it, Delivered each success, so an
//     event redelivered here after another process died counts as
//     Delivered only. QueueSize is 0: the backlog is on the broker.
//     Latest is the last event this bus published.
//   - Close waits until the bus's consumers have handled what the broker
//     held for them, then stops them and closes t.
//
// The bus owns t from then on: its Close closes t. t must not be nil.
func WithTransport(t Transport) Option {
	return func(c *config) error {
		if t == nil {
			return fmt.Errorf("%w: WithTransport(nil)", ErrInvalidOption)
		}
		c.transport = t
		return nil
	}
}

// WithCodec sets how payloads are encoded for a Transport (default JSON).
// Every process that shares the topics must use the same codec. c must not
// be nil.
func WithCodec(c Codec) Option {
	return func(cfg *config) error {
		if c == nil {
			return fmt.Errorf("%w: WithCodec(nil)", ErrInvalidOption)
		}
		cfg.codec = c
		return nil
	}
}

// minAckWait is the shortest ack wait WithAckWait and AckWait accept: the
// broker's own minimum.
const minAckWait = 100 * time.Millisecond

// WithAckWait sets, on a bus with a Transport, how long the broker waits
// for a handler to settle an event before it delivers the event again
// (default DefaultAckWait). While a handler runs, the bus tells the broker
// every d/3 that it is still working, so a slow handler is not given its
// event twice; d is then the time it takes for the events of a process
// that died to go to another. d must be at least 100ms.
func WithAckWait(d time.Duration) Option {
	return func(c *config) error {
		if d < minAckWait {
			return fmt.Errorf("%w: WithAckWait(%v): want at least %v", ErrInvalidOption, d, minAckWait)
		}
		c.ackWait = d
		return nil
	}
}
