package natsbus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/internal/topicname"
)

// The defaults New applies when an option is not given.
const (
	// DefaultStream is the name of the stream that holds the events.
	DefaultStream = "EVENTS"
	// DefaultSubjectPrefix is the first subject token: topic
	// "trade.executed" travels on subject "events.trade.executed".
	DefaultSubjectPrefix = "events"
	// DefaultDuplicateWindow is how long the stream remembers event IDs to
	// drop a second publish of the same event (JetStream's own default).
	// It is shortened to the max age when WithMaxAge sets a shorter one.
	DefaultDuplicateWindow = 2 * time.Minute
	// DefaultTimeout bounds every broker round trip whose ctx has no
	// deadline, and the stream set-up done by New.
	DefaultTimeout = 5 * time.Second
	// DefaultAckWait is how long the broker waits for a delivery to be
	// settled before it redelivers it, when SubscribeOptions.AckWait is 0
	// (JetStream's own default).
	DefaultAckWait = 30 * time.Second
	// DefaultPullBatch is how many messages a receiver fetches ahead of
	// its handlers (see WithPullBatch).
	DefaultPullBatch = 256
)

// An Option configures the transport made by New. An option given an
// invalid value makes New fail with an error wrapping
// eventbus.ErrInvalidOption.
type Option func(*config) error

type config struct {
	stream     string
	prefix     string
	storage    jetstream.StorageType
	maxAge     time.Duration
	duplicates time.Duration // 0: DefaultDuplicateWindow, capped by maxAge
	timeout    time.Duration
	logger     *slog.Logger
	batch      int // messages a receiver fetches ahead
	window     int // WithAsyncPublish: publishes awaiting their ack; 0: publish synchronously
}

func defaultConfig() config {
	return config{
		stream:  DefaultStream,
		prefix:  DefaultSubjectPrefix,
		storage: jetstream.FileStorage,
		timeout: DefaultTimeout,
		batch:   DefaultPullBatch,
	}
}

// duplicateWindow is the stream's de-duplication window: the one asked
// for, or the default cut down to the max age, as the server would.
func (c *config) duplicateWindow() time.Duration {
	if c.duplicates > 0 {
		return c.duplicates
	}
	if c.maxAge > 0 && c.maxAge < DefaultDuplicateWindow {
		return c.maxAge
	}
	return DefaultDuplicateWindow
}

// check validates the options against each other once all are applied.
func (c *config) check() error {
	if c.duplicates > 0 && c.maxAge > 0 && c.duplicates > c.maxAge {
		return fmt.Errorf("%w: WithDuplicateWindow(%v) is longer than WithMaxAge(%v): the stream would forget an event before its ID",
			eventbus.ErrInvalidOption, c.duplicates, c.maxAge)
	}
	return nil
}

// WithStream sets the name of the stream (default DefaultStream). The
// name is used as given, so that operators find it under that name: it
// must be 1 to 255 letters, digits, '-' or '_'. Every transport that
// shares events must use the same stream and subject prefix.
func WithStream(name string) Option {
	return func(c *config) error {
		if err := checkStreamName(name); err != nil {
			return fmt.Errorf("%w: WithStream(%q): %v", eventbus.ErrInvalidOption, name, err)
		}
		c.stream = name
		return nil
	}
}

// WithSubjectPrefix sets the subject tokens put before every topic name
// (default DefaultSubjectPrefix); the stream captures prefix + ".>". The
// prefix follows the rules of a topic name: dot-separated tokens of
// letters, digits, '-' and '_'.
func WithSubjectPrefix(prefix string) Option {
	return func(c *config) error {
		if err := topicname.Check(prefix); err != nil {
			return fmt.Errorf("%w: WithSubjectPrefix(%q): %v", eventbus.ErrInvalidOption, prefix, err)
		}
		c.prefix = prefix
		return nil
	}
}

// WithStorage sets where the stream keeps events: jetstream.FileStorage
// (the default) survives a broker restart, jetstream.MemoryStorage is
// faster and does not. A stream's storage cannot change once it exists.
func WithStorage(s jetstream.StorageType) Option {
	return func(c *config) error {
		if s != jetstream.FileStorage && s != jetstream.MemoryStorage {
			return fmt.Errorf("%w: WithStorage(%d): want jetstream.FileStorage or jetstream.MemoryStorage",
				eventbus.ErrInvalidOption, s)
		}
		c.storage = s
		return nil
	}
}

// WithMaxAge makes the stream discard events older than d (default 0:
// keep them until other limits of the stream apply). d must be 0 or at
// least 100ms, the broker's minimum. A durable subscription that falls
// further behind than d loses the events that expired.
func WithMaxAge(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || (d > 0 && d < 100*time.Millisecond) {
			return fmt.Errorf("%w: WithMaxAge(%v): want 0 (no limit) or at least 100ms", eventbus.ErrInvalidOption, d)
		}
		c.maxAge = d
		return nil
	}
}

// WithDuplicateWindow sets how long the stream remembers event IDs (default
// DefaultDuplicateWindow): a publish repeated within d of the first is
// acknowledged but not stored again. d must be at least 100ms and no longer
// than the max age.
func WithDuplicateWindow(d time.Duration) Option {
	return func(c *config) error {
		if d < 100*time.Millisecond {
			return fmt.Errorf("%w: WithDuplicateWindow(%v): want at least 100ms", eventbus.ErrInvalidOption, d)
		}
		c.duplicates = d
		return nil
	}
}

// WithTimeout bounds every broker round trip whose ctx has no deadline
// (publish, settlement, consumer set-up) and the stream set-up done by New
// (default DefaultTimeout). d must be positive.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithTimeout(%v): want a positive duration", eventbus.ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithLogger sets where the transport logs trouble it recovers from on its
// own, such as a consumer recreated after the broker lost it (default
// slog.Default()). l must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", eventbus.ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithPullBatch sets how many messages each receiver fetches from the
// broker ahead of its handlers (default DefaultPullBatch; a receiver with
// a larger MaxInFlight fetches that many). A larger batch costs fewer
// round trips; it also holds more events away from the other members of a
// group, and every fetched event's AckWait runs while it waits: keep the
// batch times a handler's duration well under the AckWait, or events wait
// so long in the batch that the broker delivers them again. Each
// consumer's MaxAckPending is 32 times a receiver's batch plus MaxInFlight,
// so that up to 32 members of a group each hold a full batch without
// waiting for each other. n must be between 1 and 10000.
func WithPullBatch(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 10000 {
			return fmt.Errorf("%w: WithPullBatch(%d): want 1 to 10000", eventbus.ErrInvalidOption, n)
		}
		c.batch = n
		return nil
	}
}

// WithAsyncPublish makes Publish return once the event is queued on the
// connection, with its ID as Nats-Msg-Id, instead of once the stream has
// stored it: a feed then publishes at the connection's speed rather than
// one round trip per event. At most window publishes await the stream's
// acknowledgement; a Publish that finds the window full waits for room,
// until its ctx ends (it then returns an error wrapping ctx's, and the
// event is not published). A publish whose acknowledgement does not come
// within WithTimeout, or that met a disconnection, is sent again, up to 3
// times, the duplicate window making that safe; one the broker refused,
// or that was never acknowledged, is reported through the bus's error
// handler (a *eventbus.HandlerError with no Subscriber) and counted in
// eventbus.Stats.PublishFailed: the transport implements
// eventbus.AsyncPublisher. Flush, and the bus's and the transport's Close,
// wait for every outstanding acknowledgement; publishes still outstanding
// when the connection closes are reported too. The jetstream client keeps
// one goroutine of its own per transport for this mode (it resets pending
// acknowledgements on reconnection) until the connection is closed.
// window must be between 1 and 65536; a few thousand is plenty.
func WithAsyncPublish(window int) Option {
	return func(c *config) error {
		if window < 1 || window > 1<<16 {
			return fmt.Errorf("%w: WithAsyncPublish(%d): want a window of 1 to 65536", eventbus.ErrInvalidOption, window)
		}
		c.window = window
		return nil
	}
}
