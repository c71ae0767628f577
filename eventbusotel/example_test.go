package eventbusotel_test

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"maps"
	"slices"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbusotel"
)

// Example traces a trade from the request that executes it to the ledger
// that books it, through an asynchronous subscription. Over natsbus the
// code is the same, and the ledger may run in another process.
func Example() {
	// A program would give the provider an exporter and set it with
	// otel.SetTracerProvider, and need no WithTracerProvider; this one
	// records in memory, to print.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	traced := eventbusotel.WithTracerProvider(tp)

	bus, err := eventbus.New()
	if err != nil {
		log.Fatal(err)
	}
	type trade struct {
		Symbol string  `json:"symbol"`
		Qty    float64 `json:"qty"`
	}
	trades := eventbus.MustTopic[trade](bus, "trade.executed")
	_, err = trades.Subscribe(eventbusotel.Handler(func(ctx context.Context, ev eventbus.Event[trade]) error {
		// ctx carries the consumer span: spans started from it, and
		// events published with it, join the trade's trace.
		fmt.Println("ledger:", ev.Payload.Symbol, ev.Payload.Qty)
		return nil
	}, traced), eventbus.Name("ledger"))
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, span := tp.Tracer("example").Start(ctx, "execute order")
	if err := eventbusotel.Publish(ctx, trades, trade{Symbol: "BTCUSDT", Qty: 0.25}, traced); err != nil {
		log.Fatal(err)
	}
	span.End()
	if err := bus.Close(ctx); err != nil { // waits for the ledger
		log.Fatal(err)
	}

	printTrace(rec.Ended())
	// Output:
	// ledger: BTCUSDT 0.25
	// execute order (internal)
	// publish trade.executed (producer), child of execute order
	// process trade.executed (consumer), child of publish trade.executed
}

// printTrace prints spans parents first (and, among spans as deep, by
// kind, producers before consumers), each with its parent and links.
func printTrace(spans []sdktrace.ReadOnlySpan) {
	names := map[trace.SpanID]string{}
	parents := map[trace.SpanID]trace.SpanID{}
	for _, s := range spans {
		names[s.SpanContext().SpanID()] = s.Name()
		parents[s.SpanContext().SpanID()] = s.Parent().SpanID()
	}
	depth := func(s sdktrace.ReadOnlySpan) int {
		d := 0
		for id := s.Parent().SpanID(); names[id] != ""; id = parents[id] {
			d++
		}
		return d
	}
	slices.SortFunc(spans, func(a, b sdktrace.ReadOnlySpan) int {
		return cmp.Or(cmp.Compare(depth(a), depth(b)), cmp.Compare(a.SpanKind(), b.SpanKind()))
	})
	for _, s := range spans {
		line := fmt.Sprintf("%s (%s)", s.Name(), s.SpanKind())
		if s.Parent().IsValid() {
			line += ", child of " + names[s.Parent().SpanID()]
		}
		for _, l := range s.Links() {
			line += ", linked to " + names[l.SpanContext.SpanID()]
		}
		fmt.Println(line)
	}
}

// ExamplePublishEvent publishes an event with metadata of its own: the
// handler gets it with the trace context added, and the caller's map is
// left as it was.
func ExamplePublishEvent() {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	bus, err := eventbus.New()
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = bus.Close(context.Background()) }()
	alerts := eventbus.MustTopic[string](bus, "health.alert")
	_, err = alerts.Subscribe(eventbusotel.Handler(func(_ context.Context, ev eventbus.Event[string]) error {
		fmt.Println("handler sees:", slices.Sorted(maps.Keys(ev.Metadata)))
		return nil
	}, eventbusotel.WithTracerProvider(tp)), eventbus.Name("notifier"), eventbus.Sync())
	if err != nil {
		log.Fatal(err)
	}

	md := map[string]string{"correlation_id": "req-42"}
	ev := eventbus.Event[string]{Payload: "disk full", Metadata: md}
	if err := eventbusotel.PublishEvent(context.Background(), alerts, ev, eventbusotel.WithTracerProvider(tp)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("caller keeps:", slices.Sorted(maps.Keys(md)))
	// Output:
	// handler sees: [correlation_id traceparent]
	// caller keeps: [correlation_id]
}

// ExampleWithNewTrace keeps an auditor's work out of the publisher's
// trace: its span starts a trace of its own, linked to the publish.
func ExampleWithNewTrace() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	bus, err := eventbus.New()
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = bus.Close(context.Background()) }()
	orders := eventbus.MustTopic[int](bus, "orders")
	audit := func(context.Context, eventbus.Event[int]) error { return nil }
	_, err = orders.Subscribe(eventbusotel.Handler(audit, eventbusotel.WithTracerProvider(tp), eventbusotel.WithNewTrace()),
		eventbus.Name("audit"), eventbus.Sync())
	if err != nil {
		log.Fatal(err)
	}

	if err := eventbusotel.Publish(context.Background(), orders, 1, eventbusotel.WithTracerProvider(tp)); err != nil {
		log.Fatal(err)
	}
	spans := rec.Ended()
	printTrace(spans)
	fmt.Println("one trace:", spans[0].SpanContext().TraceID() == spans[1].SpanContext().TraceID())
	// Output:
	// publish orders (producer)
	// process orders (consumer), linked to publish orders
	// one trace: false
}
