package eventbuswatermill_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbuswatermill"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// The quick start: a Watermill Publisher and Subscriber on an in-memory
// bus. Close the Subscriber and the Publisher before the bus.
func Example() {
	ctx := context.Background()
	bus, err := eventbus.New()
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)
	pub, err := eventbuswatermill.NewPublisher(bus)
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	sub, err := eventbuswatermill.NewSubscriber(bus, eventbuswatermill.SubscriberConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	msgs, err := sub.Subscribe(ctx, "orders.created")
	if err != nil {
		log.Fatal(err)
	}
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order":42}`))
	msg.Metadata.Set("correlation_id", "c-1")
	if err := pub.Publish("orders.created", msg); err != nil {
		log.Fatal(err)
	}

	got := <-msgs
	fmt.Println(string(got.Payload), got.Metadata.Get("correlation_id"), got.UUID == msg.UUID)
	got.Ack()
	// Output: {"order":42} c-1 true
}

// A Watermill router runs on the bus as on any Pub/Sub: here a handler
// turns each order into a confirmation, which typed eventbus code receives
// as an Event[eventbuswatermill.Message].
func Example_router() {
	ctx := context.Background()
	bus, err := eventbus.New()
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)
	pub, _ := eventbuswatermill.NewPublisher(bus)
	sub, _ := eventbuswatermill.NewSubscriber(bus, eventbuswatermill.SubscriberConfig{})

	confirmed := make(chan string, 1)
	_, err = eventbus.MustTopic[eventbuswatermill.Message](bus, "orders.confirmed").Subscribe(
		func(_ context.Context, ev eventbus.Event[eventbuswatermill.Message]) error {
			confirmed <- string(ev.Payload.Payload) + " for " + ev.Metadata["customer"]
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}

	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		log.Fatal(err)
	}
	router.AddHandler("confirm", "orders.created", sub, "orders.confirmed", pub,
		func(msg *message.Message) ([]*message.Message, error) {
			out := message.NewMessage(watermill.NewUUID(), append([]byte("confirmed "), msg.Payload...))
			out.Metadata = msg.Metadata
			return []*message.Message{out}, nil
		})
	stopped := make(chan error)
	go func() { stopped <- router.Run(ctx) }()
	<-router.Running()

	order := message.NewMessage(watermill.NewUUID(), []byte("order 42"))
	order.Metadata.Set("customer", "ada")
	if err := pub.Publish("orders.created", order); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-confirmed)

	if err := router.Close(); err != nil { // closes the handler's Subscriber and Publisher too
		log.Fatal(err)
	}
	if err := <-stopped; err != nil {
		log.Fatal(err)
	}
	// Output: confirmed order 42 for ada
}

// Over NATS JetStream, a ConsumerGroup makes the Subscribers of every
// process that share it one durable consumer: SubscribeInitialize creates
// it, and it keeps the messages published while no member runs.
func ExampleSubscriberConfig_consumerGroup() {
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
	tr, err := natsbus.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bus, err := eventbus.New(eventbus.WithTransport(tr))
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)
	pub, _ := eventbuswatermill.NewPublisher(bus)
	defer pub.Close()
	billing, _ := eventbuswatermill.NewSubscriber(bus, eventbuswatermill.SubscriberConfig{ConsumerGroup: "billing"})
	defer billing.Close()

	if err := billing.SubscribeInitialize("orders.created"); err != nil {
		log.Fatal(err)
	}
	for _, order := range []string{"order 1", "order 2"} {
		if err := pub.Publish("orders.created", message.NewMessage(watermill.NewUUID(), []byte(order))); err != nil {
			log.Fatal(err)
		}
	}

	msgs, err := billing.Subscribe(ctx, "orders.created")
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		msg := <-msgs
		fmt.Println(string(msg.Payload))
		msg.Ack()
	}
	// Output:
	// order 1
	// order 2
}
