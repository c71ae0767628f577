package eventbusotel

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the package's spans: the name
// it passes to TracerProvider.Tracer.
const ScopeName = "github.com/quantumtrader/eventbus/eventbusotel"

// Option configures Publish, PublishEvent and Handler. The zero value of
// each option's argument is its documented default, so no option is
// invalid. Options are applied in order; a later one wins.
type Option func(*config)

// config is the resolved options of one call.
type config struct {
	provider   trace.TracerProvider          // nil: the global one
	propagator propagation.TextMapPropagator // nil: see propagatorOf
	newTrace   bool
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithTracerProvider makes the spans with tp. Without it, or with nil, they
// are made with the global provider (otel.GetTracerProvider) as it is when
// the span starts, which records nothing until a program sets one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.provider = tp }
}

// WithPropagator writes and reads the span context with p. Without it, or
// with nil, the global propagator is used if it has been set to one that
// carries fields, and propagation.TraceContext{} otherwise (see the
// package documentation). Publisher and handler must agree.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.propagator = p }
}

// WithNewTrace makes Handler start each consumer span as the root of a new
// trace, with a link to the producer span, instead of as its child. Use it
// where the consumer's work should not become part of the publisher's
// trace: a handler that starts long-lived work, or events from publishers
// outside the system's trust. Baggage that the propagator carries stays in
// the handler's ctx either way. Publish and PublishEvent ignore it.
func WithNewTrace() Option {
	return func(c *config) { c.newTrace = true }
}

// tracer returns the tracer of the configured provider.
func (c *config) tracer() trace.Tracer {
	tp := c.provider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName, schemaURL)
}

// The options that are the same for every span, made once.
var (
	schemaURL    = trace.WithSchemaURL(semconv.SchemaURL)
	producerKind = trace.WithSpanKind(trace.SpanKindProducer)
	consumerKind = trace.WithSpanKind(trace.SpanKindConsumer)
)

// propagatorOf returns the configured propagator. The global default is
// resolved on each call, so that a program may set it after wrapping its
// handlers: a propagator with no fields propagates nothing, which is the
// global one that nobody set.
func (c *config) propagatorOf() propagation.TextMapPropagator {
	if c.propagator != nil {
		return c.propagator
	}
	if p := otel.GetTextMapPropagator(); len(p.Fields()) > 0 {
		return p
	}
	return propagation.TraceContext{}
}
