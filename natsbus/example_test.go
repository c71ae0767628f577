package natsbus_test

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// Example runs a typed topic over NATS JetStream: the code is that of the
// in-memory bus, with a transport.
func Example() {
	url, stop, err := natstest.Embedded() // a real server's URL in production
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close() // after the bus's Close
	tr, err := natsbus.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	bus, err := eventbus.New(eventbus.WithTransport(tr))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type trade struct {
		Symbol string  `json:"symbol"`
		Qty    float64 `json:"qty"`
	}
	trades := eventbus.MustTopic[trade](bus, "trade.executed")
	handled := make(chan struct{})
	// Name makes the subscription durable: a restarted ledger resumes
	// after the last trade it acknowledged. It might run in another
	// process.
	_, err = trades.Subscribe(func(_ context.Context, ev eventbus.Event[trade]) error {
		fmt.Println("ledger:", ev.Payload.Symbol, ev.Payload.Qty)
		close(handled)
		return nil
	}, eventbus.Name("ledger"))
	if err != nil {
		log.Fatal(err)
	}

	if err := trades.Publish(ctx, trade{Symbol: "BTCUSDT", Qty: 0.25}); err != nil {
		log.Fatal(err) // the broker did not store it
	}
	select {
	case <-handled:
	case <-ctx.Done():
		log.Fatal("the ledger never got the trade")
	}
	if err := bus.Close(ctx); err != nil { // closes tr too
		log.Fatal(err)
	}
	// Output:
	// ledger: BTCUSDT 0.25
}

// ExampleWithAsyncPublish runs a feed at the connection's speed, and a
// group whose members share its events: Publish returns once each tick is
// queued, Close waits until the broker stored every one, and what it did
// not store would reach the error handler.
func ExampleWithAsyncPublish() {
	url, stop, err := natstest.Embedded()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	tr, err := natsbus.New(nc, natsbus.WithAsyncPublish(1024))
	if err != nil {
		log.Fatal(err)
	}
	bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithErrorHandler(func(he *eventbus.HandlerError) {
		log.Println(he) // for a publish: the broker did not store the event
	}))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type tick struct {
		Symbol string  `json:"symbol"`
		Price  float64 `json:"price"`
	}
	ticks := eventbus.MustTopic[tick](bus, "market.tick")
	const n = 1000
	var handled atomic.Int64
	done := make(chan struct{})
	// Two members of one group, as two processes would run them: each
	// handles up to 4 ticks at once, and each tick goes to one of them.
	for range 2 {
		_, err = ticks.Subscribe(func(context.Context, eventbus.Event[tick]) error {
			if handled.Add(1) == n {
				close(done)
			}
			return nil
		}, eventbus.Group("pricers"), eventbus.Concurrency(4), eventbus.AckWait(5*time.Second))
		if err != nil {
			log.Fatal(err)
		}
	}
	for i := range n {
		if err := ticks.Publish(ctx, tick{Symbol: "BTCUSDT", Price: 42000 + float64(i)}); err != nil {
			log.Fatal(err) // the window stayed full until ctx ended
		}
	}
	<-done
	if err := bus.Close(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("handled", handled.Load(), "failed publishes", bus.Stats().PublishFailed)
	// Output:
	// handled 1000 failed publishes 0
}

// Example_transport publishes an event through the transport and receives
// it with a durable subscription, as the typed layer of package eventbus
// does: what a new transport has to do.
func Example_transport() {
	url, stop, err := natstest.Embedded()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tr, err := natsbus.New(nc) // the stream EVENTS on subjects events.>
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close(ctx)

	ledger, err := tr.Subscribe(ctx, eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger"})
	if err != nil {
		log.Fatal(err)
	}
	defer ledger.Stop(ctx)

	id, _ := eventbus.ParseID("0193a5e0-7b1c-7a00-8000-00000000002a")
	err = tr.Publish(ctx, &eventbus.Envelope{
		ID:       id,
		Topic:    "trade.executed",
		Time:     time.Now().UTC(),
		Metadata: map[string]string{"source": "executor"},
		Data:     []byte(`{"symbol":"BTCUSDT","side":"BUY"}`),
	})
	if err != nil {
		log.Fatal(err)
	}

	d, err := ledger.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	env := d.Envelope()
	fmt.Println(env.Topic, env.ID, env.Metadata["source"], string(env.Data), "attempt", d.Attempt())
	if err := d.Ack(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// trade.executed 0193a5e0-7b1c-7a00-8000-00000000002a executor {"symbol":"BTCUSDT","side":"BUY"} attempt 1
}
