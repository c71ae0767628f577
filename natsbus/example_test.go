package natsbus_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
)

// Example publishes an event through the transport and receives it with a
// durable subscription, as the typed layer of package eventbus does.
func Example() {
	// An embedded server stands in for a real one.
	dir, err := os.MkdirTemp("", "natsbus-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	ns.Start()
	defer ns.WaitForShutdown()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		log.Fatal("server not ready")
	}

	nc, err := nats.Connect(ns.ClientURL())
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
