package eventbus

import (
	"context"
	"time"
)

// Event is one published event with its payload of type T.
//
// Publish fills in ID, Topic and Time; PublishEvent keeps a non-zero ID and
// Time and the Metadata the caller set, which is how an event keeps its
// identity when it is forwarded from another bus or process. Handlers receive
// Event by value; Metadata is shared between the handlers of one event and
// must not be modified by them.
type Event[T any] struct {
	ID       ID                // unique per event, time-sortable (UUIDv7)
	Topic    string            // the topic name, e.g. "policy.updated"
	Time     time.Time         // publish time, UTC
	Payload  T                 // the typed payload
	Metadata map[string]string // correlation id, source, trace context; nil when unused
}

// Handler handles events of type T. A returned error or a panic counts as a
// failed delivery: the bus records, logs and reports it (see WithErrorHandler)
// and goes on; it never stops the bus or another subscription.
//
// ctx is the publisher's context for a Sync subscription. For an asynchronous
// one the publisher may be long gone, so ctx lives as long as the bus and is
// cancelled when Close gives up waiting; pass correlation data in Metadata.
type Handler[T any] func(ctx context.Context, ev Event[T]) error
