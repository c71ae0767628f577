package eventbusotel_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbusotel"
)

// order is the payload of the tests' topic.
type order struct {
	N int `json:"n"`
}

// Validate rejects negative numbers, so that a test can make Publish fail.
func (o order) Validate() error {
	if o.N < 0 {
		return errors.New("negative n")
	}
	return nil
}

const topicName = "orders"

// seen is what a handler saw of one call.
type seen struct {
	ev   eventbus.Event[order]
	span trace.SpanContext // of the span in the handler's ctx
	ctx  context.Context
}

// subscribeAudit subscribes to orders, as "audit", a handler wrapped with
// opts that records each call.
func subscribeAudit(t *testing.T, orders *eventbus.Topic[order], opts ...eventbusotel.Option) chan seen {
	t.Helper()
	calls := make(chan seen, 1)
	_, err := orders.Subscribe(eventbusotel.Handler(func(ctx context.Context, ev eventbus.Event[order]) error {
		calls <- seen{ev: ev, span: trace.SpanContextFromContext(ctx), ctx: ctx}
		return nil
	}, opts...), eventbus.Name("audit"))
	require.NoError(t, err)
	return calls
}

// newBus returns an in-memory bus, closed when the test ends if the test
// has not closed it.
func newBus(t *testing.T) *eventbus.Bus {
	t.Helper()
	bus, err := eventbus.New()
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return bus
}

// closeBus closes bus, which waits until every handler call has returned.
func closeBus(t *testing.T, bus *eventbus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, bus.Close(ctx))
}

// wantAttrs are the attributes every span of an event on topicName has.
func wantAttrs(id eventbus.ID, op, opType string) map[attribute.Key]string {
	return map[attribute.Key]string{
		"messaging.system":           "eventbus",
		"messaging.destination.name": topicName,
		"messaging.message.id":       id.String(),
		"messaging.operation.name":   op,
		"messaging.operation.type":   opType,
	}
}

// TestSpansInMemory publishes one event inside a span to a subscription
// whose handler succeeds, fails or panics, Sync and asynchronous, and
// checks the trace: request -> publish orders -> process orders.
func TestSpansInMemory(t *testing.T) {
	t.Parallel()
	errRejected := errors.New("order rejected")
	subscriptions := []struct {
		name string
		opts []eventbus.SubOption
	}{
		{"a Sync subscription", []eventbus.SubOption{eventbus.Sync()}},
		{"an asynchronous subscription", nil},
		{"an asynchronous subscription with Concurrency(2)", []eventbus.SubOption{eventbus.Concurrency(2)}},
	}
	outcomes := []struct {
		name       string
		err        error // returned by the handler
		panics     bool
		wantStatus sdktrace.Status
		wantType   string // error.type; "" for none
	}{
		{name: "handles the event", wantStatus: sdktrace.Status{Code: codes.Unset}},
		{name: "fails", err: errRejected, wantStatus: sdktrace.Status{Code: codes.Error, Description: errRejected.Error()}, wantType: "*errors.errorString"},
		{name: "panics", panics: true, wantStatus: sdktrace.Status{Code: codes.Error, Description: "panic: boom"}, wantType: "panic"},
	}
	for _, sub := range subscriptions {
		for _, out := range outcomes {
			t.Run(sub.name+" whose handler "+out.name, func(t *testing.T) {
				t.Parallel()
				tp := newTestTracing(t)
				bus := newBus(t)
				orders := eventbus.MustTopic[order](bus, topicName)
				calls := make(chan seen, 1)
				h := func(ctx context.Context, ev eventbus.Event[order]) error {
					calls <- seen{ev: ev, span: trace.SpanContextFromContext(ctx)}
					if out.panics {
						panic("boom")
					}
					return out.err
				}
				_, err := orders.Subscribe(eventbusotel.Handler(h, eventbusotel.WithTracerProvider(tp)),
					append([]eventbus.SubOption{eventbus.Name("audit")}, sub.opts...)...)
				require.NoError(t, err)

				ctx, request := tp.Tracer("test").Start(context.Background(), "request")
				require.NoError(t, eventbusotel.Publish(ctx, orders, order{N: 1}, eventbusotel.WithTracerProvider(tp)))
				request.End()
				closeBus(t, bus)

				got := <-calls
				spans := tp.waitEnded(t, 3)
				require.Len(t, spans, 3, "request, publish and one handler call")
				pub, proc := named(t, spans, "publish orders"), named(t, spans, "process orders")
				req := named(t, spans, "request").SpanContext()

				assert.Equal(t, trace.SpanKindProducer, pub.SpanKind())
				assert.Equal(t, req.TraceID(), pub.SpanContext().TraceID(), "publish is in the request's trace")
				assert.Equal(t, req.SpanID(), pub.Parent().SpanID(), "publish is a child of the request")
				assert.Equal(t, wantAttrs(got.ev.ID, "publish", "send"), attrs(pub))
				assert.Equal(t, codes.Unset, pub.Status().Code)

				assert.Equal(t, trace.SpanKindConsumer, proc.SpanKind())
				assert.Equal(t, pub.SpanContext().TraceID(), proc.SpanContext().TraceID(), "process is in the publish's trace")
				assert.Equal(t, pub.SpanContext().SpanID(), proc.Parent().SpanID(), "process is a child of publish")
				assert.True(t, proc.Parent().IsRemote(), "the parent came through Metadata")
				assert.Equal(t, proc.SpanContext(), got.span, "the handler's ctx carries the consumer span")
				assert.Equal(t, out.wantStatus, proc.Status())
				want := wantAttrs(got.ev.ID, "process", "process")
				if out.wantType != "" {
					want["error.type"] = out.wantType
					require.Len(t, proc.Events(), 1, "the error is recorded")
					assert.Equal(t, "exception", proc.Events()[0].Name)
				} else {
					assert.Empty(t, proc.Events())
				}
				assert.Equal(t, want, attrs(proc))
				assert.Contains(t, got.ev.Metadata, "traceparent")
			})
		}
	}
}

// TestSubscribeAll checks that a wrapped Handler[any] on every topic names
// its span after the event's topic.
func TestSubscribeAll(t *testing.T) {
	t.Parallel()
	tp := newTestTracing(t)
	bus := newBus(t)
	orders := eventbus.MustTopic[order](bus, topicName)
	_, err := eventbus.SubscribeAll(bus, eventbusotel.Handler(func(context.Context, eventbus.Event[any]) error { return nil },
		eventbusotel.WithTracerProvider(tp)), eventbus.Name("everything"))
	require.NoError(t, err)

	require.NoError(t, eventbusotel.Publish(context.Background(), orders, order{N: 1}, eventbusotel.WithTracerProvider(tp)))
	closeBus(t, bus)

	spans := tp.waitEnded(t, 2)
	pub, proc := named(t, spans, "publish orders"), named(t, spans, "process orders")
	assert.Equal(t, pub.SpanContext().SpanID(), proc.Parent().SpanID())
	assert.False(t, pub.Parent().IsValid(), "without a span in ctx, publish is a root")
}

// TestPublishEventKeepsTheCallersEvent checks that PublishEvent keeps the
// ID, time and metadata it is given, and writes the trace context into a
// copy of the metadata, never into the caller's map.
func TestPublishEventKeepsTheCallersEvent(t *testing.T) {
	t.Parallel()
	tp := newTestTracing(t)
	bus := newBus(t)
	orders := eventbus.MustTopic[order](bus, topicName)
	calls := make(chan seen, 1)
	_, err := orders.Subscribe(func(_ context.Context, ev eventbus.Event[order]) error {
		calls <- seen{ev: ev}
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	id, err := eventbus.ParseID("019a0000-0000-7000-8000-000000000001")
	require.NoError(t, err)
	md := map[string]string{"correlation_id": "c-1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	before := maps.Clone(md)
	ev := eventbus.Event[order]{ID: id, Time: id.Time(), Payload: order{N: 7}, Metadata: md}
	require.NoError(t, eventbusotel.PublishEvent(context.Background(), orders, ev, eventbusotel.WithTracerProvider(tp)))

	got := <-calls
	pub := named(t, tp.waitEnded(t, 1), "publish orders")
	assert.Equal(t, before, md, "the caller's map is unchanged")
	assert.Equal(t, id, got.ev.ID)
	assert.True(t, id.Time().Equal(got.ev.Time), "time kept")
	assert.Equal(t, "c-1", got.ev.Metadata["correlation_id"])
	assert.Equal(t, "00-"+pub.SpanContext().TraceID().String()+"-"+pub.SpanContext().SpanID().String()+"-01",
		got.ev.Metadata["traceparent"], "the traceparent of this hop replaces the old one")
	assert.Equal(t, id.String(), attrs(pub)["messaging.message.id"])
}

// TestPublishFailure checks that a publish the bus refuses returns the
// bus's error and leaves a producer span with status Error.
func TestPublishFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		publish func(ctx context.Context, bus *eventbus.Bus, orders *eventbus.Topic[order], opt eventbusotel.Option) error
		want    func(*testing.T, error)
	}{
		{
			name: "an invalid payload is a *ValidationError",
			publish: func(ctx context.Context, _ *eventbus.Bus, orders *eventbus.Topic[order], opt eventbusotel.Option) error {
				return eventbusotel.Publish(ctx, orders, order{N: -1}, opt)
			},
			want: func(t *testing.T, err error) {
				var ve *eventbus.ValidationError
				assert.ErrorAs(t, err, &ve)
			},
		},
		{
			name: "an event of another topic is ErrInvalidTopic",
			publish: func(ctx context.Context, _ *eventbus.Bus, orders *eventbus.Topic[order], opt eventbusotel.Option) error {
				return eventbusotel.PublishEvent(ctx, orders, eventbus.Event[order]{Topic: "trades"}, opt)
			},
			want: func(t *testing.T, err error) { assert.ErrorIs(t, err, eventbus.ErrInvalidTopic) },
		},
		{
			name: "a closed bus is ErrClosed",
			publish: func(ctx context.Context, bus *eventbus.Bus, orders *eventbus.Topic[order], opt eventbusotel.Option) error {
				if err := bus.Close(ctx); err != nil {
					return err
				}
				return eventbusotel.Publish(ctx, orders, order{N: 1}, opt)
			},
			want: func(t *testing.T, err error) { assert.ErrorIs(t, err, eventbus.ErrClosed) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp := newTestTracing(t)
			bus := newBus(t)
			orders := eventbus.MustTopic[order](bus, topicName)
			err := tt.publish(context.Background(), bus, orders, eventbusotel.WithTracerProvider(tp))
			require.Error(t, err)
			tt.want(t, err)
			pub := named(t, tp.waitEnded(t, 1), "publish orders")
			assert.Equal(t, sdktrace.Status{Code: codes.Error, Description: err.Error()}, pub.Status())
			require.Len(t, pub.Events(), 1)
			assert.Equal(t, "exception", pub.Events()[0].Name)
		})
	}
}

// TestNilArguments checks the errors for a nil topic and a nil handler.
func TestNilArguments(t *testing.T) {
	t.Parallel()
	tp := newTestTracing(t)
	opt := eventbusotel.WithTracerProvider(tp)
	t.Run("Publish on a nil topic is ErrNilTopic", func(t *testing.T) {
		err := eventbusotel.Publish(context.Background(), nil, order{}, opt)
		assert.ErrorIs(t, err, eventbusotel.ErrNilTopic)
	})
	t.Run("PublishEvent on a nil topic is ErrNilTopic", func(t *testing.T) {
		err := eventbusotel.PublishEvent(context.Background(), (*eventbus.Topic[order])(nil), eventbus.Event[order]{}, opt)
		assert.ErrorIs(t, err, eventbusotel.ErrNilTopic)
	})
	t.Run("Handler of nil is nil, which Subscribe refuses", func(t *testing.T) {
		h := eventbusotel.Handler[order](nil, opt)
		assert.Nil(t, h)
		_, err := eventbus.MustTopic[order](newBus(t), topicName).Subscribe(h)
		assert.ErrorIs(t, err, eventbus.ErrNilHandler)
	})
	assert.Empty(t, tp.rec.Ended(), "no span for a call refused")
}

// TestPropagators checks what travels in Metadata with the default
// propagator and with one given by WithPropagator.
func TestPropagators(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        []eventbusotel.Option
		wantKeys    []string // in Metadata
		wantBaggage string   // the handler's baggage member "tenant"
	}{
		{
			name:     "the default writes W3C traceparent only",
			wantKeys: []string{"traceparent"},
		},
		{
			name:        "trace context and baggage carry baggage too",
			opts:        []eventbusotel.Option{eventbusotel.WithPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))},
			wantKeys:    []string{"baggage", "traceparent"},
			wantBaggage: "acme",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp := newTestTracing(t)
			opts := append([]eventbusotel.Option{eventbusotel.WithTracerProvider(tp)}, tt.opts...)
			bus := newBus(t)
			orders := eventbus.MustTopic[order](bus, topicName)
			calls := subscribeAudit(t, orders, opts...)

			member, err := baggage.NewMember("tenant", "acme")
			require.NoError(t, err)
			bag, err := baggage.New(member)
			require.NoError(t, err)
			ctx := baggage.ContextWithBaggage(context.Background(), bag)
			require.NoError(t, eventbusotel.Publish(ctx, orders, order{N: 1}, opts...))
			closeBus(t, bus)

			got := <-calls
			assert.ElementsMatch(t, tt.wantKeys, slicesOfKeys(got.ev.Metadata))
			assert.Equal(t, tt.wantBaggage, baggage.FromContext(got.ctx).Member("tenant").Value())
			spans := tp.waitEnded(t, 2)
			assert.Equal(t, named(t, spans, "publish orders").SpanContext().SpanID(), named(t, spans, "process orders").Parent().SpanID())
		})
	}
}

func slicesOfKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// TestWithNewTrace checks that the consumer span of WithNewTrace roots a
// trace of its own and links to the producer span.
func TestWithNewTrace(t *testing.T) {
	t.Parallel()
	tp := newTestTracing(t)
	bus := newBus(t)
	orders := eventbus.MustTopic[order](bus, topicName)
	_, err := orders.Subscribe(eventbusotel.Handler(func(context.Context, eventbus.Event[order]) error { return nil },
		eventbusotel.WithTracerProvider(tp), eventbusotel.WithNewTrace()), eventbus.Name("audit"), eventbus.Sync())
	require.NoError(t, err)

	require.NoError(t, eventbusotel.Publish(context.Background(), orders, order{N: 1}, eventbusotel.WithTracerProvider(tp)))
	closeBus(t, bus)

	spans := tp.waitEnded(t, 2)
	pub, proc := named(t, spans, "publish orders"), named(t, spans, "process orders")
	assert.False(t, proc.Parent().IsValid(), "process is a root")
	assert.NotEqual(t, pub.SpanContext().TraceID(), proc.SpanContext().TraceID(), "in a trace of its own")
	require.Len(t, proc.Links(), 1)
	assert.Equal(t, pub.SpanContext().TraceID(), proc.Links()[0].SpanContext.TraceID())
	assert.Equal(t, pub.SpanContext().SpanID(), proc.Links()[0].SpanContext.SpanID())
}

// TestRetriedHandler checks that every call of a retried handler gets a
// consumer span of its own, each the child of the producer span.
func TestRetriedHandler(t *testing.T) {
	t.Parallel()
	tp := newTestTracing(t)
	bus := newBus(t)
	orders := eventbus.MustTopic[order](bus, topicName)
	errFirst := errors.New("first attempt fails")
	calls := 0
	_, err := orders.Subscribe(eventbusotel.Handler(func(context.Context, eventbus.Event[order]) error {
		calls++ // one worker: no race
		if calls == 1 {
			return errFirst
		}
		return nil
	}, eventbusotel.WithTracerProvider(tp)), eventbus.Name("audit"), eventbus.Retry(2, nil))
	require.NoError(t, err)

	require.NoError(t, eventbusotel.Publish(context.Background(), orders, order{N: 1}, eventbusotel.WithTracerProvider(tp)))
	closeBus(t, bus)

	spans := tp.waitEnded(t, 3)
	pub := named(t, spans, "publish orders")
	var statuses []codes.Code
	for _, s := range spans {
		if s.Name() == "process orders" {
			assert.Equal(t, pub.SpanContext().SpanID(), s.Parent().SpanID())
			statuses = append(statuses, s.Status().Code)
		}
	}
	assert.Equal(t, []codes.Code{codes.Error, codes.Unset}, statuses, "the failed call, then the retry")
}

// TestGlobalDefaults checks that without options the spans go to the
// global TracerProvider and the context travels through the global
// propagator, both as they are when the event is published and handled,
// not when the handler was wrapped. It changes globals, so it does not
// run in parallel: the parallel tests wait until it is done.
func TestGlobalDefaults(t *testing.T) {
	tp := newTestTracing(t)
	bus := newBus(t)
	orders := eventbus.MustTopic[order](bus, topicName)
	calls := subscribeAudit(t, orders)

	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() {
		// Back to providers that record and carry nothing, as if unset.
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	member, err := baggage.NewMember("tenant", "acme")
	require.NoError(t, err)
	bag, err := baggage.New(member)
	require.NoError(t, err)
	require.NoError(t, eventbusotel.Publish(baggage.ContextWithBaggage(context.Background(), bag), orders, order{N: 1}))
	closeBus(t, bus)

	got := <-calls
	assert.Equal(t, "acme", baggage.FromContext(got.ctx).Member("tenant").Value(), "baggage went through the global propagator")
	spans := tp.waitEnded(t, 2)
	assert.Equal(t, named(t, spans, "publish orders").SpanContext().SpanID(), named(t, spans, "process orders").Parent().SpanID())
}

// TestGlobalProviderSetTwice wraps a handler, then sets the global
// provider twice: each delivery's consumer span goes to the provider set
// when it runs, not to the one of the first call.
func TestGlobalProviderSetTwice(t *testing.T) {
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	bus := newBus(t)
	orders := eventbus.MustTopic[order](bus, topicName)
	_, err := orders.Subscribe(eventbusotel.Handler(func(context.Context, eventbus.Event[order]) error { return nil }),
		eventbus.Name("audit"), eventbus.Sync())
	require.NoError(t, err)
	for n := range 2 {
		tp := newTestTracing(t)
		otel.SetTracerProvider(tp)
		require.NoError(t, eventbusotel.Publish(context.Background(), orders, order{N: n}))
		spans := tp.waitEnded(t, 2)
		assert.NotNil(t, named(t, spans, "process orders"), "provider number %d records the consumer span", n+1)
	}
}
