package eventbus

import (
	"context"
	"time"
)

// Transport carries encoded events between processes, so that topics can
// span machines. The in-memory bus does not use one; WithTransport makes
// every topic of a bus publish and subscribe through it. A Transport deals
// in bytes and headers only: the typed layer encodes Event[T] into an
// Envelope with the bus's Codec, and decodes, retries, dead-letters and
// acknowledges on the way back. Package natsbus implements it on NATS
// JetStream.
//
// Implementations must be safe for concurrent use.
type Transport interface {
	// Publish hands env to the broker and returns once the broker has
	// stored it (at-least-once delivery starts there). Publishing the same
	// env.ID again within the broker's de-duplication window must not store
	// it twice. Errors name the topic and wrap the cause.
	Publish(ctx context.Context, env *Envelope) error

	// Subscribe starts a consumer of the topic described by opts and returns
	// the Receiver the bus's delivery goroutines pull from.
	Subscribe(ctx context.Context, opts SubscribeOptions) (Receiver, error)

	// Close stops the transport's own work; it does not close connections it
	// was given. The bus calls it from Close after every Receiver has been
	// stopped.
	Close(ctx context.Context) error
}

// AsyncPublisher is implemented by a Transport whose Publish may return
// before the broker has stored the event: once the event is queued, with
// its ID, for a bounded window of acknowledgements (natsbus.WithAsyncPublish).
// New gives such a transport the bus's report of failures, and Close
// flushes it before it drains the consumers, so that what was published is
// stored, or reported, before Close returns.
type AsyncPublisher interface {
	// OnPublishFailure sets f, which the transport then calls once for
	// each event its Publish accepted and the broker did not store, after
	// the transport's own retries, from any goroutine. New calls it before
	// anything is published; a transport without it must report failures
	// some other way (its log).
	OnPublishFailure(f func(env *Envelope, err error))
	// Flush blocks until every event Publish accepted before Flush was
	// called is stored by the broker or reported to the OnPublishFailure
	// func. It returns ctx's error if ctx ends first.
	Flush(ctx context.Context) error
}

// Envelope is one event in transit: what the typed layer gives a
// Transport to publish, and what a Delivery gives back. A Transport carries
// every field unchanged.
type Envelope struct {
	ID       ID                // the event ID; also the broker's de-duplication key
	Topic    string            // the topic name (Event.Type in JSON)
	Time     time.Time         // the publish time, UTC
	Metadata map[string]string // Event.Metadata
	Data     []byte            // the payload, encoded by the bus's Codec
}

// SubscribeOptions describe the consumer the typed layer wants: one per
// subscription and topic (a SubscribeAll subscription has one per topic).
type SubscribeOptions struct {
	// Topic is the topic whose events the consumer receives.
	Topic string
	// Name makes the consumer durable: it survives restarts of the process
	// and resumes after the last acknowledged event. Empty: an ephemeral
	// consumer that starts with new events and is removed by Stop.
	Name string
	// Group lets several processes share one durable consumer, each event
	// going to one of them. It takes precedence over Name for the consumer's
	// identity.
	Group string
	// Replay starts a new consumer with the last stored event of the topic.
	Replay bool
	// MaxInFlight is how many deliveries this receiver's callers work on at
	// once (the subscription's Concurrency). A Receiver hands its
	// deliveries out in the broker's order, and the typed layer retries a
	// failed one before taking the next, so 1 keeps publish order. For a
	// Group it applies to each member, not to the group.
	MaxInFlight int
	// AckWait is how long the broker waits for a settlement before it
	// redelivers (WithAckWait, or AckWait per subscription); the typed
	// layer calls InProgress well within it while a handler runs or waits
	// to retry.
	AckWait time.Duration
}

// Receiver yields the deliveries of one consumer. It must be safe for
// concurrent use: a subscription with Concurrency(n) has n goroutines
// calling Next.
type Receiver interface {
	// Next blocks until a delivery arrives, ctx ends (it returns ctx's error)
	// or the receiver is stopped (it returns ErrClosed).
	Next(ctx context.Context) (Delivery, error)
	// Stop ends the consumer: Next returns ErrClosed, deliveries already
	// handed out can still be settled, and an ephemeral consumer is deleted.
	// A durable consumer stays with the broker. Stop may be called more
	// than once.
	Stop(ctx context.Context) error
}

// Drainer is implemented by a Receiver that can tell when its consumer has
// handled what the broker held for it. Bus.Close calls Drain on each
// receiver, while the receivers still deliver, before it stops them; for a
// Receiver without Drain, Close stops it at once and the broker keeps what
// it had not delivered (for a durable consumer) or drops it (for an
// ephemeral one).
type Drainer interface {
	// Drain blocks until every event the broker held for the consumer when
	// Drain was called is settled: acknowledged or rejected, by this
	// receiver or, for a shared consumer, by another. It returns nil then,
	// ctx's error if ctx ends first, or an error wrapping ErrClosed if the
	// receiver is stopped. Events published after Drain began are not waited
	// for. The caller keeps calling Next and settling meanwhile.
	Drain(ctx context.Context) error
}

// Delivery is one received envelope. Exactly one of Ack, Retry and Reject
// settles it; InProgress may be called any number of times before that.
// Its methods may be called from any goroutine, also after the Receiver
// was stopped.
type Delivery interface {
	// Envelope returns the event delivered; the caller must not change it.
	Envelope() *Envelope
	// Attempt is 1 for the first delivery of the envelope to this
	// consumer, and counts the broker's deliveries in any process, so that
	// the Retry limit holds across restarts.
	Attempt() int
	// Ack confirms the event was handled: it will not be delivered again.
	Ack(ctx context.Context) error
	// Retry asks for a redelivery after delay.
	Retry(ctx context.Context, delay time.Duration) error
	// Reject gives up on the event: it will never be delivered again.
	Reject(ctx context.Context) error
	// InProgress tells the broker the handler is still working, postponing
	// redelivery by another AckWait.
	InProgress(ctx context.Context) error
}
