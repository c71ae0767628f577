package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/quantumtrader/eventbus"
)

type Price struct {
	Symbol string
	Last   float64
}

// The quick start: a typed topic, a subscriber, a publish, and a Close that
// waits until the event has been handled.
func Example() {
	ctx := context.Background()
	bus, err := eventbus.New()
	if err != nil {
		panic(err)
	}

	prices := eventbus.MustTopic[Price](bus, "market.price")
	_, err = prices.Subscribe(func(ctx context.Context, ev eventbus.Event[Price]) error {
		fmt.Printf("%s %s %.2f\n", ev.Topic, ev.Payload.Symbol, ev.Payload.Last)
		return nil
	})
	if err != nil {
		panic(err)
	}

	if err := prices.Publish(ctx, Price{Symbol: "BTCUSDT", Last: 42350.5}); err != nil {
		panic(err)
	}
	if err := bus.Close(ctx); err != nil { // drains: the handler has run
		panic(err)
	}
	// Output: market.price BTCUSDT 42350.50
}

// A topic's name and payload type are checked once, when it is looked up;
// from then on the compiler checks every publish and handler.
func ExampleNewTopic() {
	bus, _ := eventbus.New()
	defer bus.Close(context.Background())

	a, _ := eventbus.NewTopic[Price](bus, "market.price")
	b, _ := eventbus.NewTopic[Price](bus, "market.price")
	_, err := eventbus.NewTopic[string](bus, "market.price")
	_, bad := eventbus.NewTopic[Price](bus, "market price")

	fmt.Println(a == b)
	fmt.Println(errors.Is(err, eventbus.ErrTopicType))
	fmt.Println(errors.Is(bad, eventbus.ErrInvalidTopic))
	// Output:
	// true
	// true
	// true
}

// PublishWait waits until every subscriber has handled the event and returns
// their errors joined.
func ExampleTopic_PublishWait() {
	ctx := context.Background()
	bus, _ := eventbus.New(eventbus.WithLogger(slog.New(slog.DiscardHandler)))
	defer bus.Close(ctx)

	orders := eventbus.MustTopic[string](bus, "orders")
	orders.Subscribe(func(context.Context, eventbus.Event[string]) error {
		return errors.New("risk limit exceeded")
	}, eventbus.Name("risk-guard"))
	orders.Subscribe(func(_ context.Context, ev eventbus.Event[string]) error {
		fmt.Println("booked", ev.Payload)
		return nil
	}, eventbus.Name("ledger"))

	err := orders.PublishWait(ctx, "ORD-1")
	var he *eventbus.HandlerError
	if errors.As(err, &he) {
		fmt.Println(he.Subscriber, "failed:", he.Err)
	}
	// Output:
	// booked ORD-1
	// risk-guard failed: risk limit exceeded
}

// A Sync subscription runs in the publisher's goroutine, before Publish returns.
func ExampleSync() {
	ctx := context.Background()
	bus, _ := eventbus.New()
	defer bus.Close(ctx)

	var last float64
	prices := eventbus.MustTopic[Price](bus, "market.price")
	prices.Subscribe(func(_ context.Context, ev eventbus.Event[Price]) error {
		last = ev.Payload.Last
		return nil
	}, eventbus.Sync())

	prices.Publish(ctx, Price{Symbol: "ETHUSDT", Last: 2250})
	fmt.Println(last)
	// Output: 2250
}

// SubscribeAll sees every topic's events, with the typed payload inside
// Event[any].
func ExampleSubscribeAll() {
	ctx := context.Background()
	bus, _ := eventbus.New()

	eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
		switch p := ev.Payload.(type) {
		case Price:
			fmt.Println(ev.Topic, p.Symbol)
		case string:
			fmt.Println(ev.Topic, p)
		}
		return nil
	}, eventbus.Name("audit"))

	eventbus.MustTopic[Price](bus, "market.price").Publish(ctx, Price{Symbol: "SOLUSDT"})
	eventbus.MustTopic[string](bus, "orders").Publish(ctx, "ORD-2")
	bus.Close(ctx)
	// Output:
	// market.price SOLUSDT
	// orders ORD-2
}

// OnFull chooses what happens when a subscriber falls behind: here a
// dashboard keeps only the newest quotes instead of slowing the feed.
func ExampleOnFull() {
	ctx := context.Background()
	bus, _ := eventbus.New()
	prices := eventbus.MustTopic[Price](bus, "market.price")

	busy := make(chan struct{})
	release := make(chan struct{})
	var seen []float64
	dashboard, _ := prices.Subscribe(func(_ context.Context, ev eventbus.Event[Price]) error {
		seen = append(seen, ev.Payload.Last)
		if len(seen) == 1 {
			close(busy)
			<-release // slow on the first quote
		}
		return nil
	}, eventbus.Queue(2), eventbus.OnFull(eventbus.DropOldest))

	prices.Publish(ctx, Price{Symbol: "BTCUSDT", Last: 0})
	<-busy
	for i := 1; i < 10; i++ {
		prices.Publish(ctx, Price{Symbol: "BTCUSDT", Last: float64(i)})
	}
	close(release)
	bus.Close(ctx)
	fmt.Println("seen", seen, "dropped", dashboard.Stats().Dropped)
	// Output: seen [0 8 9] dropped 7
}
