package eventbusotel

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/quantumtrader/eventbus"
)

// Handler returns a handler that runs h inside a consumer span named
// "process <topic>", for Topic.Subscribe or (with T = any)
// eventbus.SubscribeAll. The span's parent is the span context that
// Publish wrote into the event's Metadata (with WithNewTrace: a new trace,
// linked to it); h's ctx carries the consumer span, and with it whatever
// else the propagator carried, such as baggage. An event without a span
// context in its Metadata gets a consumer span whose parent is the span
// in the handler's ctx, if any: for a Sync subscription, the publisher's.
//
// When h returns an error or panics, the span records it and has status
// Error; the error is returned and the panic goes on, unchanged, for the
// bus to handle as it would without the wrapper. Handler returns nil for a
// nil h, which Subscribe reports as eventbus.ErrNilHandler.
//
// A subscription without eventbus.Name is named after its handler's
// function, which is now this wrapper: give wrapped subscriptions a Name.
// The returned handler is safe for concurrent use if h is.
func Handler[T any](h eventbus.Handler[T], opts ...Option) eventbus.Handler[T] {
	if h == nil {
		return nil
	}
	cfg := newConfig(opts)
	return func(ctx context.Context, ev eventbus.Event[T]) (err error) {
		ctx = cfg.propagatorOf().Extract(ctx, propagation.MapCarrier(ev.Metadata))
		start := make([]trace.SpanStartOption, 2, 4)
		start[0] = consumerKind
		start[1] = trace.WithAttributes(spanAttributes(ev.Topic, ev.ID, "process", semconv.MessagingOperationTypeProcess)...)
		if cfg.newTrace {
			start = append(start, trace.WithNewRoot())
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
				start = append(start, trace.WithLinks(trace.Link{SpanContext: sc}))
			}
		}
		// The provider is looked up per call, as Publish does: a program
		// may wrap its handlers before it sets the global provider, or set
		// it more than once.
		ctx, span := cfg.tracer().Start(ctx, "process "+ev.Topic, start...)
		// A panic is recovered only to be recorded, and raised again as it
		// was: the bus recovers it and reports it with its stack, counts,
		// retries and dead-letters it like any handler's.
		defer func() {
			if p := recover(); p != nil {
				perr, ok := p.(error)
				if !ok {
					perr = fmt.Errorf("%v", p)
				}
				span.RecordError(fmt.Errorf("panic: %w", perr), trace.WithStackTrace(true))
				span.SetStatus(codes.Error, fmt.Sprintf("panic: %v", p))
				span.SetAttributes(semconv.ErrorTypeKey.String("panic"))
				span.End()
				panic(p)
			}
			if err != nil {
				fail(span, err)
			}
			span.End()
		}()
		return h(ctx, ev)
	}
}
