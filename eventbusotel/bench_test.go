package eventbusotel_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbusotel"
)

// BenchmarkPublish measures what tracing adds to a publish to a topic with
// one Sync subscriber: the plain publish and handler, then the traced
// ones with a provider that records nothing (the global default) and with
// the SDK sampling every span (into no exporter).
func BenchmarkPublish(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	publishers := []struct {
		name string
		opt  eventbusotel.Option // nil: no tracing
	}{
		{"plain", nil},
		{"otel=noop", eventbusotel.WithTracerProvider(noop.NewTracerProvider())},
		{"otel=sdk", eventbusotel.WithTracerProvider(sdk)},
	}
	for _, p := range publishers {
		b.Run(p.name, func(b *testing.B) {
			bus, err := eventbus.New()
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = bus.Close(context.Background()) }()
			orders := eventbus.MustTopic[order](bus, topicName)
			h := func(context.Context, eventbus.Event[order]) error { return nil }
			publish := func(ctx context.Context) error { return orders.Publish(ctx, order{N: 1}) }
			if p.opt != nil {
				h = eventbusotel.Handler(h, p.opt)
				publish = func(ctx context.Context) error { return eventbusotel.Publish(ctx, orders, order{N: 1}, p.opt) }
			}
			if _, err := orders.Subscribe(h, eventbus.Sync(), eventbus.Name("bench")); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := publish(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
