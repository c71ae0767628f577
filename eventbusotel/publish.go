package eventbusotel

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/internal/idgen"
)

// messagingSystem is the value of messaging.system on every span.
const messagingSystem = "eventbus"

// Publish publishes payload on t as t.Publish does, inside a producer span
// named "publish <topic>" whose context it writes into the event's
// Metadata (see the package documentation). The span's parent is the span
// in ctx, if any; it ends when t.Publish returns, so with Sync subscribers
// it spans their handlers. If t.Publish fails, the span records the error
// and has status Error, and Publish returns the error unchanged.
//
// Publish stamps the event's ID and time itself, as t.Publish would, so
// that the span can name the event. It returns an error wrapping
// ErrNilTopic for a nil t. It is safe for concurrent use; besides the
// span, it costs a Metadata map per event.
func Publish[T any](ctx context.Context, t *eventbus.Topic[T], payload T, opts ...Option) error {
	var ev eventbus.Event[T]
	ev.Payload = payload
	return publish(ctx, t, &ev, "Publish", opts)
}

// PublishEvent is Publish for a complete event, as t.PublishEvent: a
// non-zero ID and Time and the Metadata are kept. The Metadata goes out as
// a copy with the propagator's entries added, replacing any of the same
// name (an event forwarded from elsewhere gets the span of this hop); the
// caller's map is never modified, so it may be shared or reused.
func PublishEvent[T any](ctx context.Context, t *eventbus.Topic[T], ev eventbus.Event[T], opts ...Option) error {
	return publish(ctx, t, &ev, "PublishEvent", opts)
}

func publish[T any](ctx context.Context, t *eventbus.Topic[T], ev *eventbus.Event[T], fn string, opts []Option) error {
	if t == nil {
		return fmt.Errorf("%w: eventbusotel.%s", ErrNilTopic, fn)
	}
	cfg := newConfig(opts)
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if ev.ID.IsZero() {
		ev.ID = nextID(ev.Time.UnixMilli())
	}
	topic := t.Name()
	ctx, span := cfg.tracer().Start(ctx, "publish "+topic,
		producerKind, trace.WithAttributes(spanAttributes(topic, ev.ID, "publish", semconv.MessagingOperationTypeSend)...))
	defer span.End()

	md := make(map[string]string, len(ev.Metadata)+2) // traceparent, tracestate
	maps.Copy(md, ev.Metadata)
	cfg.propagatorOf().Inject(ctx, propagation.MapCarrier(md))
	ev.Metadata = md

	err := t.PublishEvent(ctx, *ev)
	if err != nil {
		fail(span, err)
	}
	return err
}

// spanAttributes are the attributes of a producer or consumer span.
func spanAttributes(topic string, id eventbus.ID, op string, opType attribute.KeyValue) []attribute.KeyValue {
	return []attribute.KeyValue{
		semconv.MessagingSystemKey.String(messagingSystem),
		semconv.MessagingDestinationName(topic),
		semconv.MessagingMessageID(id.String()),
		semconv.MessagingOperationName(op),
		opType,
	}
}

// fail marks span as failed with err.
func fail(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorType(err))
}

// ids stamps the events that Publish makes. Its IDs have the layout of the
// bus's own, from a random prefix of their own, so they are unique among
// them and across processes as the bus's are.
var ids struct {
	sync.Mutex // an idgen.Source is not safe for concurrent use
	src        *idgen.Source
}

func nextID(unixMilli int64) (id eventbus.ID) {
	ids.Lock()
	if ids.src == nil {
		ids.src = idgen.NewRoot().Derive(0)
	}
	ids.src.NextTo((*[16]byte)(&id), unixMilli)
	ids.Unlock()
	return id
}
