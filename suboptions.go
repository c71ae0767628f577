package eventbus

import (
	"fmt"
	"math/rand/v2"
	"time"
)

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
	queueSize   int
	concurrency int
	policy      FullPolicy
	name        string
	maxAttempts int
	backoff     func(attempt int) time.Duration
	replay      bool
	partition   any    // func(T) string, checked against T at Subscribe
	buffered    string // the first option that needs a buffer, to refuse it with Sync
	group       string
	ackWait     time.Duration // 0: the bus's WithAckWait
	local       string        // the first option that needs the in-memory bus, to refuse it with a transport
}

func (c *subConfig) needsMemory(opt string) {
	if c.local == "" {
		c.local = opt
	}
}

func (c *subConfig) needsBuffer(opt string) {
	if c.buffered == "" {
		c.buffered = opt
	}
}

// Sync makes the handler run inline, in the publisher's goroutine and with
// the publisher's ctx, before Publish returns. Use it for quick handlers that
// must see an event before the publisher goes on; a slow Sync handler slows
// every publisher of the topic. Sync subscriptions have no buffer: combining
// Sync with Queue, Concurrency, OnFull or PartitionBy is an error.
func Sync() SubOption {
	return func(c *subConfig) error {
		c.sync = true
		c.needsMemory("Sync")
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
		c.needsBuffer("Queue")
		return nil
	}
}

// Concurrency runs n handler goroutines for this subscription (default 1).
// With n > 1 events are handled in parallel and may finish out of publish
// order, unless PartitionBy keeps the order of each key.
func Concurrency(n int) SubOption {
	return func(c *subConfig) error {
		if n <= 0 {
			return fmt.Errorf("%w: Concurrency(%d): the count must be positive", ErrInvalidOption, n)
		}
		c.concurrency = n
		c.needsBuffer("Concurrency")
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
		c.needsBuffer("OnFull")
		if p != Block {
			c.needsMemory("OnFull(" + p.String() + ")")
		}
		return nil
	}
}

// Name names the subscription in statistics, logs and HandlerError. Without
// it a subscription is named after its handler function. On a bus with a
// Transport it also makes the subscription durable: its consumer on the
// broker outlives the process, and a subscription of the same name and
// topic resumes after the last event acknowledged; subscriptions that
// share a name and a topic share the consumer, as a Group does. s must not
// be empty.
func Name(s string) SubOption {
	return func(c *subConfig) error {
		if s == "" {
			return fmt.Errorf("%w: Name(\"\")", ErrInvalidOption)
		}
		c.name = s
		return nil
	}
}

// Retry makes a failed delivery (an error or a panic) run again, up to max
// attempts in total, waiting backoff(attempt) after failed attempt number
// attempt (nil: no wait). Each retry is counted in Stats.Retries. After the
// last attempt the event is published on DeadLetters(bus) as a DeadLetter.
// An asynchronous subscription retries before it takes its next event, so
// order is kept; the wait ends early, and the event counts as undelivered,
// if Close gives up. A panic in backoff is recovered and logged, and the
// next attempt follows at once. The default is one attempt. max must be at
// least 1.
func Retry(max int, backoff func(attempt int) time.Duration) SubOption {
	return func(c *subConfig) error {
		if max < 1 {
			return fmt.Errorf("%w: Retry(%d, ...): at least one attempt is needed", ErrInvalidOption, max)
		}
		c.maxAttempts, c.backoff = max, backoff
		return nil
	}
}

// ExponentialBackoff returns a backoff for Retry that waits about base after
// the first failed attempt and doubles the wait after each further one, up
// to capped, with jitter: each wait is drawn uniformly from [d/2, d] so that
// subscribers failing together do not retry in lockstep. It panics if base
// is not positive or capped is less than base, like time.NewTicker with a
// bad duration: these are constants in any sane program.
func ExponentialBackoff(base, capped time.Duration) func(attempt int) time.Duration {
	if base <= 0 || capped < base {
		panic(fmt.Sprintf("eventbus: ExponentialBackoff(%v, %v): want 0 < base <= cap", base, capped))
	}
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < capped; i++ {
			d = min(d, capped/2) * 2 // doubling, without overflowing past capped
		}
		d = min(d, capped)
		return d/2 + rand.N(d/2+1)
	}
}

// Replay makes a new subscription first receive the topic's latest event
// (see Topic.Latest), taken atomically with the subscription: no event
// published in between is missed or received twice. For SubscribeAll it
// replays the latest event of every existing topic. A Sync subscription
// receives the replayed event inside Subscribe, with a ctx that carries no
// deadline; a publisher that reaches the new subscription meanwhile waits
// until the replayed event has been handled, so it still comes first. A
// Sync Replay handler that publishes to its own topic must pass the ctx
// it was given, which lets that publish through instead of waiting for
// the replay that makes it.
func Replay() SubOption {
	return func(c *subConfig) error {
		c.replay = true
		return nil
	}
}

// PartitionBy splits an asynchronous subscription with Concurrency(n) into n
// partitions by key: events whose key (e.g. a symbol) is equal go to the same
// partition and are handled one at a time in publish order, while different
// partitions run in parallel. Each partition has its own buffer of
// ceil(queue size / n) events and its own goroutine. key must not be nil, T
// must be the topic's payload type (any for SubscribeAll), and key must be
// quick: the publisher calls it.
func PartitionBy[T any](key func(T) string) SubOption {
	return func(c *subConfig) error {
		if key == nil {
			return fmt.Errorf("%w: PartitionBy(nil)", ErrInvalidOption)
		}
		c.partition = key
		c.needsBuffer("PartitionBy")
		c.needsMemory("PartitionBy")
		return nil
	}
}

// Group makes the subscription one member of a group of competing
// consumers on a Transport: every event of the topic goes to one member of
// the group, in whichever process, and the group remembers where it is
// between restarts (it is durable, like Name). Subscriptions in different
// groups, or in none, each get every event. Concurrency bounds the events
// each member handles at once, so members add throughput; events keep
// their publish order within a member with Concurrency(1), not across the
// group. A member that dies does not hold up the others: its unsettled
// events go to another member after the ack wait (AckWait). The in-memory bus has
// no groups: Subscribe refuses Group without WithTransport, with an error
// wrapping ErrInvalidOption and errors.ErrUnsupported. s must not be empty.
func Group(s string) SubOption {
	return func(c *subConfig) error {
		if s == "" {
			return fmt.Errorf("%w: Group(\"\")", ErrInvalidOption)
		}
		c.group = s
		return nil
	}
}

// AckWait sets, for this subscription on a Transport, how long the broker
// waits for an event to be settled before it delivers it again, overriding
// WithAckWait. It is how long the events a dead process held (the one being
// handled and those its receiver had fetched ahead) wait before another
// member of the group, or the process restarted, gets them: choose it
// short for a group that must take over quickly, and well above the time a
// receiver takes to work through what it fetches ahead (its batch times
// the handler's duration), or buffered events are delivered twice. While a
// handler runs or waits between attempts the bus tells the broker every d/3
// that it still works. The in-memory bus has no broker: Subscribe refuses
// AckWait without WithTransport, with an error wrapping ErrInvalidOption
// and errors.ErrUnsupported. d must be at least 100ms.
func AckWait(d time.Duration) SubOption {
	return func(c *subConfig) error {
		if d < minAckWait {
			return fmt.Errorf("%w: AckWait(%v): want at least %v", ErrInvalidOption, d, minAckWait)
		}
		c.ackWait = d
		return nil
	}
}
