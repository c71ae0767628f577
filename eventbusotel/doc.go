// Package eventbusotel carries OpenTelemetry traces across eventbus topics:
// a publish starts a producer span and writes its span context into the
// event's Metadata, and a wrapped handler reads it back and runs inside a
// consumer span, child of the producer span. It works the same in memory
// (Sync and asynchronous subscriptions) and across processes on natsbus,
// where Metadata travels in message headers. The root eventbus package does
// not import OpenTelemetry; only programs that import this one do.
//
//	err := eventbusotel.Publish(ctx, trades, trade)      // instead of trades.Publish(ctx, trade)
//	...
//	sub, err := trades.Subscribe(eventbusotel.Handler(onTrade), eventbus.Name("ledger"))
//
// # Spans
//
// Both spans follow the OpenTelemetry semantic conventions for messaging
// (the semconv package this module imports names the version):
//
//	                  producer span             consumer span
//	name              "publish <topic>"         "process <topic>"
//	kind              trace.SpanKindProducer    trace.SpanKindConsumer
//	parent            the span in ctx, if any   the producer span (remote), or
//	                                            none with a link to it (WithNewTrace)
//	messaging.system                  "eventbus" (both)
//	messaging.destination.name        the topic name (both)
//	messaging.message.id              the event ID, UUID text (both)
//	messaging.operation.name          "publish" / "process"
//	messaging.operation.type          "send" / "process"
//	status, error.type                Error, with the error recorded as an exception
//	                                  event, when Publish fails / the handler fails or panics
//
// A handler that the bus calls again (eventbus.Retry, or a redelivery on a
// transport) gets a consumer span per call.
//
// # Propagation
//
// The span context is written by a propagation.TextMapPropagator into the
// event's Metadata, which is a propagation.MapCarrier as it is. With the
// default, W3C Trace Context, that is the entries "traceparent" and, when
// the trace has one, "tracestate". The propagator is the one given to
// WithPropagator, else the global one (otel.SetTextMapPropagator) if it has
// been set to one that carries anything, else propagation.TraceContext{}:
// unlike the global default, which carries nothing, tracing across the bus
// works without further set-up. Publisher and handler must use propagators
// that agree, as on any transport.
package eventbusotel
