package eventbusprom_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbusprom"
)

// Wiring: one collector per bus, registered once, served by promhttp. A
// scrape reads the bus's statistics at that moment.
func Example() {
	ctx := context.Background()
	bus, err := eventbus.New()
	if err != nil {
		panic(err)
	}
	defer bus.Close(ctx)

	c, err := eventbusprom.New(bus)
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux) // in a program: http.Server{Addr: ":9090", Handler: mux}
	defer srv.Close()

	prices := eventbus.MustTopic[float64](bus, "market.price")
	for _, p := range []float64{42350.5, 42351, 42349.5} {
		if err := prices.Publish(ctx, p); err != nil {
			panic(err)
		}
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "eventbus_events_") {
			fmt.Print(line)
		}
	}
	// Output:
	// eventbus_events_no_subscribers_total{topic="market.price"} 3
	// eventbus_events_published_total{topic="market.price"} 3
}

// Two buses in one registry: a const label tells their series apart, so
// they share the metric names, and the dashboards built on them.
func ExampleWithConstLabels() {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	for _, name := range []string{"orders", "quotes"} {
		bus, err := eventbus.New()
		if err != nil {
			panic(err)
		}
		defer bus.Close(ctx)
		c, err := eventbusprom.New(bus, eventbusprom.WithConstLabels(prometheus.Labels{"bus": name}))
		if err != nil {
			panic(err)
		}
		reg.MustRegister(c)
		t := eventbus.MustTopic[string](bus, name+".updated")
		if _, err := t.Subscribe(func(context.Context, eventbus.Event[string]) error { return nil }, eventbus.Name("audit")); err != nil {
			panic(err)
		}
		if err := t.PublishWait(ctx, "hello"); err != nil {
			panic(err)
		}
	}

	out, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, "eventbus_subscription_delivered_total")
	if err != nil {
		panic(err)
	}
	fmt.Print(string(out))
	// Output:
	// # HELP eventbus_subscription_delivered_total Deliveries whose handler returned nil, after retries if any. Per live subscription of a topic; subscriptions of a topic that share a name are summed.
	// # TYPE eventbus_subscription_delivered_total counter
	// eventbus_subscription_delivered_total{bus="orders",subscription="audit",topic="orders.updated"} 1
	// eventbus_subscription_delivered_total{bus="quotes",subscription="audit",topic="quotes.updated"} 1
}

// A namespace replaces "eventbus" at the front of every name.
func ExampleWithNamespace() {
	bus, err := eventbus.New()
	if err != nil {
		panic(err)
	}
	defer bus.Close(context.Background())
	c, err := eventbusprom.New(bus, eventbusprom.WithNamespace("quantumtrader"))
	if err != nil {
		panic(err)
	}
	eventbus.MustTopic[int](bus, "market.tick")

	fmt.Println(testutil.CollectAndCount(c, "quantumtrader_events_published_total"))
	fmt.Println(testutil.CollectAndCount(c, "eventbus_events_published_total"))
	// Output:
	// 1
	// 0
}
