package eventbus

import (
	"context"

	"github.com/quantumtrader/eventbus/internal/ring"
)

// The typed layer (Topic, Subscribe and their options, the statistics, the
// failure policy of failure.go) runs over one of two engines, chosen once
// in New, as slog's Logger runs over a Handler:
//
//   - the ring engine, in memory: publish.go and produce.go write each
//     event into the subscriptions' rings, worker.go's goroutines take it
//     out, sync.go runs Sync handlers in the publisher's goroutine;
//   - the transport engine, with WithTransport: remote_publish.go encodes
//     each event for the broker, remote.go and remote_deliver.go receive,
//     decode and settle what the broker delivers.
//
// Each topic gets its engine's half (topicEngine) when it is created, each
// subscription its own (subEngine) when it subscribes.

// topicEngine carries the events of one topic to its subscriptions.
type topicEngine[T any] interface {
	// publish delivers ev, validated and stamped with the topic and a time
	// by the typed layer; it gives ev an ID if it has none. Internal
	// publishes (dead letters) still pass while Close drains the bus.
	publish(ctx context.Context, ev Event[T], internal bool) error
	// publishWait is PublishWait for ev, validated and stamped as above.
	publishWait(ctx context.Context, ev Event[T]) error
	// subscribe gives s its queue and starts its delivery, or returns why
	// it cannot: ErrClosed, or the broker's error.
	subscribe(s *subscriber[T], cfg subConfig) error
	// closeQueues tells the topic's delivery goroutines that nothing more
	// will be queued: Close calls it once the publishers are done, or
	// when it gives up. The caller holds the topic's lock.
	closeQueues()
}

// subEngine is what a Subscription needs from its engine half.
type subEngine interface {
	detach()                         // leave the list: nothing more is queued
	drain(ctx context.Context) error // on a transport: wait for what the broker holds
	closeQueue()                     // no more events; the workers drain and exit
	discard(undelivered bool) error  // take back what waits, settling waiters
	// deliveries are the Dispatched and Delivered counts the engine keeps
	// apart from the subscription's counters (see Subscription.load).
	deliveries() (dispatched, delivered uint64)
}

// newTopicEngine returns the engine half of a new topic: the transport
// engine on a bus with a Transport, else the ring engine.
func newTopicEngine[T any](t *Topic[T]) topicEngine[T] {
	if t.bus.cfg.transport != nil {
		return remoteTopic[T]{t}
	}
	return &memTopic[T]{Topic: t}
}

// memTopic is a topic's half of the ring engine: the topic's shared ring,
// and the producer's side of the rings (publish.go, produce.go).
type memTopic[T any] struct {
	*Topic[T]
	ring *ring.Ring[item[T]] // shared by the lanes that can share; nil until the first
}

// remoteTopic is a topic's half of the transport engine.
type remoteTopic[T any] struct{ *Topic[T] }
