package eventbusprom_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbusprom"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newBus(t *testing.T) *eventbus.Bus {
	t.Helper()
	bus, err := eventbus.New(eventbus.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return bus
}

func newCollector(t *testing.T, bus *eventbus.Bus, opts ...eventbusprom.Option) *eventbusprom.Collector {
	t.Helper()
	c, err := eventbusprom.New(bus, opts...)
	require.NoError(t, err)
	return c
}

func ok[T any](context.Context, eventbus.Event[T]) error { return nil }

// tradedBus returns a closed bus after a known sequence of events:
//
//   - market.tick: 4 events, to "ranker" (takes all) and "runtime" (two
//     attempts each; fails tick 1 with an error and tick 3 with a panic,
//     both dead-lettered);
//   - policy.updated: 1 event, to two subscriptions named "risk", one Sync
//     and one with Queue(8);
//   - health.status_changed: 1 event, no subscription of its own;
//   - eventbus.dead_letter: the 2 dead letters;
//   - "audit", a Sync SubscribeAll, gets all 8 of them.
//
// PublishWait and Close leave nothing in flight, so every count is final.
func tradedBus(t *testing.T) *eventbus.Bus {
	t.Helper()
	ctx := t.Context()
	bus := newBus(t)
	ticks := eventbus.MustTopic[int](bus, "market.tick")
	_, err := ticks.Subscribe(ok[int], eventbus.Name("ranker"))
	require.NoError(t, err)
	_, err = ticks.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
		switch ev.Payload {
		case 1:
			return errors.New("stale tick")
		case 3:
			panic("corrupt tick")
		}
		return nil
	}, eventbus.Name("runtime"), eventbus.Retry(2, nil))
	require.NoError(t, err)
	policy := eventbus.MustTopic[string](bus, "policy.updated")
	_, err = policy.Subscribe(ok[string], eventbus.Name("risk"), eventbus.Sync())
	require.NoError(t, err)
	_, err = policy.Subscribe(ok[string], eventbus.Name("risk"), eventbus.Queue(8))
	require.NoError(t, err)
	_, err = eventbus.SubscribeAll(bus, ok[any], eventbus.Name("audit"), eventbus.Sync())
	require.NoError(t, err)
	health := eventbus.MustTopic[string](bus, "health.status_changed")

	for i := 1; i <= 4; i++ {
		err := ticks.PublishWait(ctx, i)
		if i%2 == 1 {
			require.Error(t, err, "tick %d fails in runtime", i)
		} else {
			require.NoError(t, err, "tick %d", i)
		}
	}
	require.NoError(t, policy.PublishWait(ctx, "DEFENSIVE"))
	require.NoError(t, health.PublishWait(ctx, "CRITICAL"))
	require.NoError(t, bus.Close(ctx))
	return bus
}

func TestCollectorExportsWhatStatsCounts(t *testing.T) {
	c := newCollector(t, tradedBus(t))
	for _, tc := range []struct {
		name  string
		want  string
		names []string
	}{
		{
			name: "events are counted per topic, the dead letters' included",
			want: `
# HELP eventbus_events_published_total Events accepted by Publish, PublishEvent and PublishWait.
# TYPE eventbus_events_published_total counter
eventbus_events_published_total{topic="eventbus.dead_letter"} 2
eventbus_events_published_total{topic="health.status_changed"} 1
eventbus_events_published_total{topic="market.tick"} 4
eventbus_events_published_total{topic="policy.updated"} 1
# HELP eventbus_events_no_subscribers_total Events published while the topic had no subscription at all.
# TYPE eventbus_events_no_subscribers_total counter
eventbus_events_no_subscribers_total{topic="eventbus.dead_letter"} 0
eventbus_events_no_subscribers_total{topic="health.status_changed"} 0
eventbus_events_no_subscribers_total{topic="market.tick"} 0
eventbus_events_no_subscribers_total{topic="policy.updated"} 0
`,
			names: []string{"eventbus_events_published_total", "eventbus_events_no_subscribers_total"},
		},
		{
			// Per topic: 4 ticks to 2 subscriptions; runtime's two failures
			// take 2 attempts each, one of them a panic per failed tick.
			name: "deliveries are counted per topic, without SubscribeAll's",
			want: `
# HELP eventbus_dispatched_total Deliveries begun: one per event and subscription that took it. Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_dispatched_total counter
eventbus_dispatched_total{topic="eventbus.dead_letter"} 0
eventbus_dispatched_total{topic="health.status_changed"} 0
eventbus_dispatched_total{topic="market.tick"} 8
eventbus_dispatched_total{topic="policy.updated"} 2
# HELP eventbus_delivered_total Deliveries whose handler returned nil, after retries if any. Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_delivered_total counter
eventbus_delivered_total{topic="eventbus.dead_letter"} 0
eventbus_delivered_total{topic="health.status_changed"} 0
eventbus_delivered_total{topic="market.tick"} 6
eventbus_delivered_total{topic="policy.updated"} 2
# HELP eventbus_handler_errors_total Handler calls that returned an error or panicked. Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_handler_errors_total counter
eventbus_handler_errors_total{topic="eventbus.dead_letter"} 0
eventbus_handler_errors_total{topic="health.status_changed"} 0
eventbus_handler_errors_total{topic="market.tick"} 4
eventbus_handler_errors_total{topic="policy.updated"} 0
# HELP eventbus_handler_panics_total Handler calls that panicked (also counted as errors). Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_handler_panics_total counter
eventbus_handler_panics_total{topic="eventbus.dead_letter"} 0
eventbus_handler_panics_total{topic="health.status_changed"} 0
eventbus_handler_panics_total{topic="market.tick"} 2
eventbus_handler_panics_total{topic="policy.updated"} 0
# HELP eventbus_handler_retries_total Handler calls made again after a failure. Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_handler_retries_total counter
eventbus_handler_retries_total{topic="eventbus.dead_letter"} 0
eventbus_handler_retries_total{topic="health.status_changed"} 0
eventbus_handler_retries_total{topic="market.tick"} 2
eventbus_handler_retries_total{topic="policy.updated"} 0
# HELP eventbus_dead_lettered_total Deliveries given up after their last attempt and published as a DeadLetter. Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_dead_lettered_total counter
eventbus_dead_lettered_total{topic="eventbus.dead_letter"} 0
eventbus_dead_lettered_total{topic="health.status_changed"} 0
eventbus_dead_lettered_total{topic="market.tick"} 2
eventbus_dead_lettered_total{topic="policy.updated"} 0
# HELP eventbus_dropped_total Deliveries a DropNewest or DropOldest policy discarded. Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_dropped_total counter
eventbus_dropped_total{topic="eventbus.dead_letter"} 0
eventbus_dropped_total{topic="health.status_changed"} 0
eventbus_dropped_total{topic="market.tick"} 0
eventbus_dropped_total{topic="policy.updated"} 0
# HELP eventbus_undelivered_total Deliveries abandoned because Close's deadline passed first. Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_undelivered_total counter
eventbus_undelivered_total{topic="eventbus.dead_letter"} 0
eventbus_undelivered_total{topic="health.status_changed"} 0
eventbus_undelivered_total{topic="market.tick"} 0
eventbus_undelivered_total{topic="policy.updated"} 0
`,
			names: []string{
				"eventbus_dispatched_total", "eventbus_delivered_total", "eventbus_handler_errors_total",
				"eventbus_handler_panics_total", "eventbus_handler_retries_total", "eventbus_dead_lettered_total",
				"eventbus_dropped_total", "eventbus_undelivered_total",
			},
		},
		{
			// The two "risk" subscriptions are one series: a Sync one
			// (no buffer) and one of Queue(8), one event each.
			name: "subscriptions of a topic that share a name are summed",
			want: `
# HELP eventbus_subscription_dispatched_total Deliveries begun: one per event and subscription that took it. Per live subscription of a topic; subscriptions of a topic that share a name are summed.
# TYPE eventbus_subscription_dispatched_total counter
eventbus_subscription_dispatched_total{subscription="ranker",topic="market.tick"} 4
eventbus_subscription_dispatched_total{subscription="risk",topic="policy.updated"} 2
eventbus_subscription_dispatched_total{subscription="runtime",topic="market.tick"} 4
# HELP eventbus_subscription_delivered_total Deliveries whose handler returned nil, after retries if any. Per live subscription of a topic; subscriptions of a topic that share a name are summed.
# TYPE eventbus_subscription_delivered_total counter
eventbus_subscription_delivered_total{subscription="ranker",topic="market.tick"} 4
eventbus_subscription_delivered_total{subscription="risk",topic="policy.updated"} 2
eventbus_subscription_delivered_total{subscription="runtime",topic="market.tick"} 2
# HELP eventbus_subscription_handler_errors_total Handler calls that returned an error or panicked. Per live subscription of a topic; subscriptions of a topic that share a name are summed.
# TYPE eventbus_subscription_handler_errors_total counter
eventbus_subscription_handler_errors_total{subscription="ranker",topic="market.tick"} 0
eventbus_subscription_handler_errors_total{subscription="risk",topic="policy.updated"} 0
eventbus_subscription_handler_errors_total{subscription="runtime",topic="market.tick"} 4
# HELP eventbus_subscription_dead_lettered_total Deliveries given up after their last attempt and published as a DeadLetter. Per live subscription of a topic; subscriptions of a topic that share a name are summed.
# TYPE eventbus_subscription_dead_lettered_total counter
eventbus_subscription_dead_lettered_total{subscription="ranker",topic="market.tick"} 0
eventbus_subscription_dead_lettered_total{subscription="risk",topic="policy.updated"} 0
eventbus_subscription_dead_lettered_total{subscription="runtime",topic="market.tick"} 2
# HELP eventbus_subscription_queue_capacity Capacity of the subscription's buffer, summed over partitions; 0 for Sync.
# TYPE eventbus_subscription_queue_capacity gauge
eventbus_subscription_queue_capacity{subscription="ranker",topic="market.tick"} 10000
eventbus_subscription_queue_capacity{subscription="risk",topic="policy.updated"} 8
eventbus_subscription_queue_capacity{subscription="runtime",topic="market.tick"} 10000
# HELP eventbus_subscription_queue_length Events waiting in the subscription's buffer now; 0 for Sync.
# TYPE eventbus_subscription_queue_length gauge
eventbus_subscription_queue_length{subscription="ranker",topic="market.tick"} 0
eventbus_subscription_queue_length{subscription="risk",topic="policy.updated"} 0
eventbus_subscription_queue_length{subscription="runtime",topic="market.tick"} 0
`,
			names: []string{
				"eventbus_subscription_dispatched_total", "eventbus_subscription_delivered_total",
				"eventbus_subscription_handler_errors_total", "eventbus_subscription_dead_lettered_total",
				"eventbus_subscription_queue_capacity", "eventbus_subscription_queue_length",
			},
		},
		{
			// audit adds 8 deliveries: 4 ticks, 1 policy, 1 health, 2 dead
			// letters, on top of the topics' 8 + 2.
			name: "bus-wide series add what SubscribeAll subscriptions counted",
			want: `
# HELP eventbus_bus_dispatched_total Deliveries begun: one per event and subscription that took it. Over the whole bus, SubscribeAll and past subscriptions included.
# TYPE eventbus_bus_dispatched_total counter
eventbus_bus_dispatched_total 18
# HELP eventbus_bus_delivered_total Deliveries whose handler returned nil, after retries if any. Over the whole bus, SubscribeAll and past subscriptions included.
# TYPE eventbus_bus_delivered_total counter
eventbus_bus_delivered_total 16
# HELP eventbus_bus_dead_lettered_total Deliveries given up after their last attempt and published as a DeadLetter. Over the whole bus, SubscribeAll and past subscriptions included.
# TYPE eventbus_bus_dead_lettered_total counter
eventbus_bus_dead_lettered_total 2
# HELP eventbus_bus_subscriptions Live subscriptions, SubscribeAll ones included.
# TYPE eventbus_bus_subscriptions gauge
eventbus_bus_subscriptions 5
# HELP eventbus_bus_topics_with_subscribers Topics that have at least one subscription of their own.
# TYPE eventbus_bus_topics_with_subscribers gauge
eventbus_bus_topics_with_subscribers 2
# HELP eventbus_bus_queue_length Events waiting in every subscription's buffer now, SubscribeAll ones included.
# TYPE eventbus_bus_queue_length gauge
eventbus_bus_queue_length 0
`,
			names: []string{
				"eventbus_bus_dispatched_total", "eventbus_bus_delivered_total", "eventbus_bus_dead_lettered_total",
				"eventbus_bus_subscriptions", "eventbus_bus_topics_with_subscribers", "eventbus_bus_queue_length",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(tc.want), tc.names...))
		})
	}
}

// A handler holds tick 1; Queue(2) then holds ticks 2 and 3, and
// DropNewest discards 4 and 5.
func TestCollectorShowsAFullQueue(t *testing.T) {
	ctx := t.Context()
	bus := newBus(t)
	ticks := eventbus.MustTopic[int](bus, "market.tick")
	started, release := make(chan struct{}, 1), make(chan struct{})
	_, err := ticks.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 1 {
			started <- struct{}{}
			<-release
		}
		return nil
	}, eventbus.Name("slow"), eventbus.Queue(2), eventbus.OnFull(eventbus.DropNewest))
	require.NoError(t, err)
	require.NoError(t, ticks.Publish(ctx, 1))
	<-started
	for i := 2; i <= 5; i++ {
		require.NoError(t, ticks.Publish(ctx, i))
	}
	c := newCollector(t, bus)

	const want = `
# HELP eventbus_queue_length Events waiting in the buffers of the topic's subscriptions now.
# TYPE eventbus_queue_length gauge
eventbus_queue_length{topic="market.tick"} 2
# HELP eventbus_queue_high_water The most events that have waited at once in one live subscription's buffer of the topic.
# TYPE eventbus_queue_high_water gauge
eventbus_queue_high_water{topic="market.tick"} 2
# HELP eventbus_subscription_queue_length Events waiting in the subscription's buffer now; 0 for Sync.
# TYPE eventbus_subscription_queue_length gauge
eventbus_subscription_queue_length{subscription="slow",topic="market.tick"} 2
# HELP eventbus_subscription_queue_capacity Capacity of the subscription's buffer, summed over partitions; 0 for Sync.
# TYPE eventbus_subscription_queue_capacity gauge
eventbus_subscription_queue_capacity{subscription="slow",topic="market.tick"} 2
# HELP eventbus_subscription_dropped_total Deliveries a DropNewest or DropOldest policy discarded. Per live subscription of a topic; subscriptions of a topic that share a name are summed.
# TYPE eventbus_subscription_dropped_total counter
eventbus_subscription_dropped_total{subscription="slow",topic="market.tick"} 2
# HELP eventbus_bus_queue_length Events waiting in every subscription's buffer now, SubscribeAll ones included.
# TYPE eventbus_bus_queue_length gauge
eventbus_bus_queue_length 2
`
	assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"eventbus_queue_length", "eventbus_queue_high_water", "eventbus_subscription_queue_length",
		"eventbus_subscription_queue_capacity", "eventbus_subscription_dropped_total", "eventbus_bus_queue_length"))

	close(release)
	require.NoError(t, bus.Close(ctx))
	assert.Equal(t, 0.0, gathered(t, c, "eventbus_queue_length", map[string]string{"topic": "market.tick"}), "drained")
}

// gathered returns the value of the one series of name whose labels
// include labels, failing t if there is none.
func gathered(t *testing.T, c prometheus.Collector, name string, labels map[string]string) float64 {
	t.Helper()
	m := find(t, c, name, labels)
	require.NotNil(t, m, "%s%v", name, labels)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

// find returns the series of name whose labels include labels, or nil.
func find(t *testing.T, c prometheus.Collector, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			return m
		}
	}
	return nil
}

func TestCollectorLatency(t *testing.T) {
	c := newCollector(t, tradedBus(t))
	for _, tc := range []struct {
		name   string
		metric string
		labels map[string]string
		want   bool
	}{
		{"a topic whose handlers ran has a median", "eventbus_handler_latency_seconds", map[string]string{"topic": "market.tick", "quantile": "0.5"}, true},
		{"a topic whose handlers ran has a p99", "eventbus_handler_latency_seconds", map[string]string{"topic": "market.tick", "quantile": "0.99"}, true},
		{"a subscription that ran has a median", "eventbus_subscription_handler_latency_seconds", map[string]string{"topic": "market.tick", "subscription": "runtime", "quantile": "0.5"}, true},
		{"a subscription that ran has a p99", "eventbus_subscription_handler_latency_seconds", map[string]string{"topic": "policy.updated", "subscription": "risk", "quantile": "0.99"}, true},
		{"a topic no handler of its own ran has none", "eventbus_handler_latency_seconds", map[string]string{"topic": "health.status_changed"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := find(t, c, tc.metric, tc.labels)
			if !tc.want {
				assert.Nil(t, m, "no latency is better than a made-up 0")
				return
			}
			require.NotNil(t, m)
			assert.Greater(t, m.GetGauge().GetValue(), 0.0)
			assert.Less(t, m.GetGauge().GetValue(), 60.0, "in seconds")
		})
	}
	t.Run("the median is at most the p99", func(t *testing.T) {
		p50 := gathered(t, c, "eventbus_handler_latency_seconds", map[string]string{"topic": "market.tick", "quantile": "0.5"})
		p99 := gathered(t, c, "eventbus_handler_latency_seconds", map[string]string{"topic": "market.tick", "quantile": "0.99"})
		assert.LessOrEqual(t, p50, p99)
	})
}

func TestNew(t *testing.T) {
	bus := newBus(t)
	eventbus.MustTopic[int](bus, "market.tick")
	for _, tc := range []struct {
		name    string
		bus     *eventbus.Bus
		opts    []eventbusprom.Option
		wantErr error
		metric  string            // a metric name the collector then exports
		labels  map[string]string // with these labels
	}{
		{"the default namespace is eventbus", bus, nil, nil, "eventbus_events_published_total", map[string]string{"topic": "market.tick"}},
		{"a namespace replaces eventbus", bus, []eventbusprom.Option{eventbusprom.WithNamespace("orders")}, nil,
			"orders_events_published_total", map[string]string{"topic": "market.tick"}},
		{"const labels are on every series", bus, []eventbusprom.Option{eventbusprom.WithConstLabels(prometheus.Labels{"bus": "orders"})}, nil,
			"eventbus_bus_subscriptions", map[string]string{"bus": "orders"}},
		{"const labels add up and the last value wins", bus, []eventbusprom.Option{
			eventbusprom.WithConstLabels(prometheus.Labels{"bus": "a", "region": "eu"}),
			eventbusprom.WithConstLabels(prometheus.Labels{"bus": "b"}),
		}, nil, "eventbus_events_published_total", map[string]string{"bus": "b", "region": "eu", "topic": "market.tick"}},
		{"a nil bus is refused", nil, nil, eventbusprom.ErrNilBus, "", nil},
		{"an empty namespace is refused", bus, []eventbusprom.Option{eventbusprom.WithNamespace("")}, eventbusprom.ErrInvalidOption, "", nil},
		{"a namespace with a dash is refused", bus, []eventbusprom.Option{eventbusprom.WithNamespace("event-bus")}, eventbusprom.ErrInvalidOption, "", nil},
		{"a label name with a dot is refused", bus, []eventbusprom.Option{eventbusprom.WithConstLabels(prometheus.Labels{"bus.name": "x"})}, eventbusprom.ErrInvalidOption, "", nil},
		{"a reserved label name is refused", bus, []eventbusprom.Option{eventbusprom.WithConstLabels(prometheus.Labels{"__name__": "x"})}, eventbusprom.ErrInvalidOption, "", nil},
		{"the topic label is the collector's own", bus, []eventbusprom.Option{eventbusprom.WithConstLabels(prometheus.Labels{"topic": "x"})}, eventbusprom.ErrInvalidOption, "", nil},
		{"the quantile label is the collector's own", bus, []eventbusprom.Option{eventbusprom.WithConstLabels(prometheus.Labels{"quantile": "x"})}, eventbusprom.ErrInvalidOption, "", nil},
		{"a label value that is not UTF-8 is refused", bus, []eventbusprom.Option{eventbusprom.WithConstLabels(prometheus.Labels{"bus": "\xff"})}, eventbusprom.ErrInvalidOption, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := eventbusprom.New(tc.bus, tc.opts...)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Nil(t, c)
				return
			}
			require.NoError(t, err)
			assert.NotNil(t, find(t, c, tc.metric, tc.labels), "%s%v", tc.metric, tc.labels)
		})
	}
}

func TestTwoBusesInOneRegistry(t *testing.T) {
	ctx := t.Context()
	orders, quotes := newBus(t), newBus(t)
	require.NoError(t, eventbus.MustTopic[int](orders, "market.tick").Publish(ctx, 1))
	for range 3 {
		require.NoError(t, eventbus.MustTopic[int](quotes, "market.tick").Publish(ctx, 1))
	}

	t.Run("a const label tells them apart", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(newCollector(t, orders, eventbusprom.WithConstLabels(prometheus.Labels{"bus": "orders"}))))
		require.NoError(t, reg.Register(newCollector(t, quotes, eventbusprom.WithConstLabels(prometheus.Labels{"bus": "quotes"}))))
		const want = `
# HELP eventbus_events_published_total Events accepted by Publish, PublishEvent and PublishWait.
# TYPE eventbus_events_published_total counter
eventbus_events_published_total{bus="orders",topic="market.tick"} 1
eventbus_events_published_total{bus="quotes",topic="market.tick"} 3
`
		assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "eventbus_events_published_total"))
	})

	t.Run("without one the second is refused at Register", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(newCollector(t, orders)))
		err := reg.Register(newCollector(t, quotes))
		var already prometheus.AlreadyRegisteredError
		assert.ErrorAs(t, err, &already)
	})
}

// Scrapes while publishers run: the race detector watches, and the
// counters never go down from one scrape to the next.
func TestCollectorIsSafeForConcurrentUse(t *testing.T) {
	ctx := t.Context()
	bus := newBus(t)
	ticks := eventbus.MustTopic[int](bus, "market.tick")
	sub, err := ticks.Subscribe(ok[int], eventbus.Name("ranker"))
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(newCollector(t, bus)))

	const publishers, events = 2, 2000
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for i := range events {
				if !assert.NoError(t, ticks.Publish(ctx, i)) {
					return
				}
			}
		})
	}
	// published runs in the scraping goroutines too: it asserts, and
	// returns -1 on failure, rather than stop the test from there.
	published := func() float64 {
		mfs, err := reg.Gather()
		if !assert.NoError(t, err) {
			return -1
		}
		for _, mf := range mfs {
			if mf.GetName() == "eventbus_events_published_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		assert.Fail(t, "no eventbus_events_published_total")
		return -1
	}
	var scrapes sync.WaitGroup
	for range 2 {
		scrapes.Go(func() {
			last := 0.0
			for range 20 {
				n := published()
				assert.GreaterOrEqual(t, n, last, "a counter never goes down")
				last = n
			}
		})
	}
	wg.Wait()
	scrapes.Wait()
	require.NoError(t, bus.Close(ctx))
	assert.Equal(t, float64(publishers*events), published())
	assert.Equal(t, uint64(publishers*events), sub.Stats().Delivered)
}

// Scrapes a real promhttp handler over loopback, as Prometheus would.
func TestScrapeOverHTTP(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(newCollector(t, tradedBus(t))))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	require.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"), srv.URL)

	const want = `
# HELP eventbus_events_published_total Events accepted by Publish, PublishEvent and PublishWait.
# TYPE eventbus_events_published_total counter
eventbus_events_published_total{topic="eventbus.dead_letter"} 2
eventbus_events_published_total{topic="health.status_changed"} 1
eventbus_events_published_total{topic="market.tick"} 4
eventbus_events_published_total{topic="policy.updated"} 1
# HELP eventbus_subscription_delivered_total Deliveries whose handler returned nil, after retries if any. Per live subscription of a topic; subscriptions of a topic that share a name are summed.
# TYPE eventbus_subscription_delivered_total counter
eventbus_subscription_delivered_total{subscription="ranker",topic="market.tick"} 4
eventbus_subscription_delivered_total{subscription="risk",topic="policy.updated"} 2
eventbus_subscription_delivered_total{subscription="runtime",topic="market.tick"} 2
# HELP eventbus_bus_delivered_total Deliveries whose handler returned nil, after retries if any. Over the whole bus, SubscribeAll and past subscriptions included.
# TYPE eventbus_bus_delivered_total counter
eventbus_bus_delivered_total 16
`
	assert.NoError(t, testutil.ScrapeAndCompare(srv.URL+"/metrics", strings.NewReader(want),
		"eventbus_events_published_total", "eventbus_subscription_delivered_total", "eventbus_bus_delivered_total"))
}

func TestCollectorAfterUnsubscribe(t *testing.T) {
	ctx := t.Context()
	bus := newBus(t)
	ticks := eventbus.MustTopic[int](bus, "market.tick")
	gone, err := ticks.Subscribe(ok[int], eventbus.Name("gone"))
	require.NoError(t, err)
	_, err = ticks.Subscribe(ok[int], eventbus.Name("\xffstays"))
	require.NoError(t, err)
	for i := range 3 {
		require.NoError(t, ticks.PublishWait(ctx, i))
	}
	require.NoError(t, gone.Unsubscribe())
	require.NoError(t, bus.Close(ctx))

	const want = `
# HELP eventbus_delivered_total Deliveries whose handler returned nil, after retries if any. Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only.
# TYPE eventbus_delivered_total counter
eventbus_delivered_total{topic="market.tick"} 6
# HELP eventbus_subscription_delivered_total Deliveries whose handler returned nil, after retries if any. Per live subscription of a topic; subscriptions of a topic that share a name are summed.
# TYPE eventbus_subscription_delivered_total counter
` + "eventbus_subscription_delivered_total{subscription=\"\uFFFDstays\",topic=\"market.tick\"} 3\n"
	// The topic keeps counting what the subscription that left delivered,
	// so its counter never goes down; the subscription's series goes. A
	// name that is not UTF-8 is made so rather than failing the scrape.
	assert.NoError(t, testutil.CollectAndCompare(newCollector(t, bus), strings.NewReader(want),
		"eventbus_delivered_total", "eventbus_subscription_delivered_total"))
}
