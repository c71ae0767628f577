package eventbus

import (
	"fmt"
	"log/slog"
)

// DefaultQueueSize is the capacity of an asynchronous subscription's buffer
// unless WithQueueSize or Queue says otherwise; it matches max_queue_size of
// the Python bus this library replaces.
const DefaultQueueSize = 10000

// DefaultWorkers is the default limit on the handlers PublishWait runs at once.
const DefaultWorkers = 4

// An Option configures a Bus; see New.
type Option func(*config) error

type config struct {
	queueSize    int
	workers      int
	logger       *slog.Logger
	errorHandler func(*HandlerError)
}

func defaultConfig() config {
	return config{queueSize: DefaultQueueSize, workers: DefaultWorkers}
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
// (default slog.Default()). l must not be nil.
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
// concurrently. f must not be nil.
func WithErrorHandler(f func(*HandlerError)) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("%w: WithErrorHandler(nil)", ErrInvalidOption)
		}
		c.errorHandler = f
		return nil
	}
}

// FullPolicy says what Publish does when an asynchronous subscription's
// buffer is full; see OnFull.
type FullPolicy uint8

const (
	// Block makes Publish wait for room (honouring its ctx). Nothing is lost.
	// This is the default.
	Block FullPolicy = iota
	// DropNewest discards the event being published, for this subscription only.
	DropNewest
	// DropOldest discards the oldest event waiting in this subscription's
	// buffer to make room for the new one.
	DropOldest
	// Reject makes Publish fail with ErrQueueFull; the event is delivered to
	// no subscription, so the caller may retry it.
	Reject
)

func (p FullPolicy) String() string {
	switch p {
	case Block:
		return "Block"
	case DropNewest:
		return "DropNewest"
	case DropOldest:
		return "DropOldest"
	case Reject:
		return "Reject"
	}
	return fmt.Sprintf("FullPolicy(%d)", uint8(p))
}

// A SubOption configures one subscription; see Topic.Subscribe and SubscribeAll.
type SubOption func(*subConfig) error

type subConfig struct {
	sync        bool
	queueSize   int // 0: the bus default
	concurrency int
	policy      FullPolicy
	name        string
}

// Sync makes the handler run inline, in the publisher's goroutine and with
// the publisher's ctx, before Publish returns. Use it for quick handlers that
// must see an event before the publisher goes on; a slow Sync handler slows
// every publisher of the topic. Sync subscriptions have no buffer, so Queue,
// Concurrency and OnFull do not apply to them.
func Sync() SubOption {
	return func(c *subConfig) error {
		c.sync = true
		return nil
	}
}

// Queue sets the capacity of this subscription's buffer, overriding
// WithQueueSize. n must be positive.
func Queue(n int) SubOption {
	return func(c *subConfig) error {
		if n <= 0 {
			return fmt.Errorf("%w: Queue(%d): the size must be positive", ErrInvalidOption, n)
		}
		c.queueSize = n
		return nil
	}
}

// Concurrency runs n handler goroutines for this subscription (default 1).
// With n > 1 events are handled in parallel and may finish out of publish order.
func Concurrency(n int) SubOption {
	return func(c *subConfig) error {
		if n <= 0 {
			return fmt.Errorf("%w: Concurrency(%d): the count must be positive", ErrInvalidOption, n)
		}
		c.concurrency = n
		return nil
	}
}

// OnFull sets what Publish does when this subscription's buffer is full
// (default Block).
func OnFull(p FullPolicy) SubOption {
	return func(c *subConfig) error {
		if p > Reject {
			return fmt.Errorf("%w: OnFull(%v)", ErrInvalidOption, p)
		}
		c.policy = p
		return nil
	}
}

// Name names the subscription in statistics, logs and HandlerError. Without
// it a subscription is named after its handler function. s must not be empty.
func Name(s string) SubOption {
	return func(c *subConfig) error {
		if s == "" {
			return fmt.Errorf("%w: Name(\"\")", ErrInvalidOption)
		}
		c.name = s
		return nil
	}
}
