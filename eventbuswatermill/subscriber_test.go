package eventbuswatermill_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbuswatermill"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMessagesMapToEventsAndBack(t *testing.T) {
	ctx := context.Background()

	t.Run("a Watermill message reaches a typed subscriber with its UUID, payload and metadata", func(t *testing.T) {
		bus := newBus(t)
		pub, _ := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		got := make(chan eventbus.Event[eventbuswatermill.Message], 1)
		_, err := eventbus.MustTopic[eventbuswatermill.Message](bus, "orders.created").Subscribe(
			func(_ context.Context, ev eventbus.Event[eventbuswatermill.Message]) error {
				got <- ev
				return nil
			})
		require.NoError(t, err)

		msg := message.NewMessage("uuid-1", []byte(`{"id":1}`))
		msg.Metadata.Set("correlation_id", "c-42")
		require.NoError(t, pub.Publish("orders.created", msg))
		msg.Payload[0] = 'X' // the publisher may reuse its message at once

		ev := <-got
		assert.Equal(t, eventbuswatermill.Message{UUID: "uuid-1", Payload: []byte(`{"id":1}`)}, ev.Payload)
		assert.Equal(t, map[string]string{"correlation_id": "c-42"}, ev.Metadata)
		assert.Equal(t, "orders.created", ev.Topic)
		assert.False(t, ev.ID.IsZero(), "the event has an ID of its own")
	})

	t.Run("a typed event reaches a Watermill subscriber with its metadata", func(t *testing.T) {
		bus := newBus(t)
		_, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		msgs, err := sub.Subscribe(ctx, "orders.created")
		require.NoError(t, err)

		err = eventbus.MustTopic[eventbuswatermill.Message](bus, "orders.created").PublishEvent(ctx, eventbus.Event[eventbuswatermill.Message]{
			Payload:  eventbuswatermill.Message{UUID: "uuid-2", Payload: []byte("hello")},
			Metadata: map[string]string{"source": "typed"},
		})
		require.NoError(t, err)

		msg := receive(t, msgs)
		assert.Equal(t, "uuid-2", msg.UUID)
		assert.Equal(t, []byte("hello"), []byte(msg.Payload))
		assert.Equal(t, message.Metadata{"source": "typed"}, msg.Metadata)
		assert.True(t, msg.Ack())
	})

	t.Run("a message without metadata gets an empty map, ready for Set", func(t *testing.T) {
		bus := newBus(t)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		msgs, err := sub.Subscribe(ctx, "orders.created")
		require.NoError(t, err)
		require.NoError(t, pub.Publish("orders.created", message.NewMessage("uuid-3", nil)))

		msg := receive(t, msgs)
		require.NotNil(t, msg.Metadata)
		assert.Empty(t, msg.Metadata)
		msg.Ack()
	})
}

func TestTopicNamesAreChecked(t *testing.T) {
	bus := newBus(t)
	pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	for _, name := range []string{"", "orders/created", "orders created", "orders..created", "orders.*", "orders.>"} {
		t.Run("Watermill topic "+`"`+name+`"`+" is refused as an invalid bus topic", func(t *testing.T) {
			err := pub.Publish(name, message.NewMessage(watermill.NewUUID(), nil))
			assert.ErrorIs(t, err, eventbus.ErrInvalidTopic, "Publish")
			_, err = sub.Subscribe(ctx, name)
			assert.ErrorIs(t, err, eventbus.ErrInvalidTopic, "Subscribe")
			assert.ErrorIs(t, sub.SubscribeInitialize(name), eventbus.ErrInvalidTopic, "SubscribeInitialize")
		})
	}

	t.Run("a bus topic of another payload type is refused", func(t *testing.T) {
		eventbus.MustTopic[string](bus, "prices")
		err := pub.Publish("prices", message.NewMessage(watermill.NewUUID(), nil))
		assert.ErrorIs(t, err, eventbus.ErrTopicType)
		_, err = sub.Subscribe(ctx, "prices")
		assert.ErrorIs(t, err, eventbus.ErrTopicType)
	})
}

func TestConfigurationIsValidated(t *testing.T) {
	bus := newBus(t)
	for name, cfg := range map[string]eventbuswatermill.SubscriberConfig{
		"negative Concurrency": {Concurrency: -1},
		"negative MaxAttempts": {MaxAttempts: -1},
	} {
		t.Run(name+" is an invalid option", func(t *testing.T) {
			_, err := eventbuswatermill.NewSubscriber(bus, cfg)
			assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
		})
	}
	t.Run("a nil bus is an invalid option", func(t *testing.T) {
		_, err := eventbuswatermill.NewSubscriber(nil, eventbuswatermill.SubscriberConfig{})
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
		_, err = eventbuswatermill.NewPublisher(nil)
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
	})
	t.Run("a consumer group on the in-memory bus is unsupported", func(t *testing.T) {
		_, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{ConsumerGroup: "billing"})
		_, err := sub.Subscribe(context.Background(), "orders.created")
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
		assert.ErrorIs(t, err, errors.ErrUnsupported)
	})
}

func TestClose(t *testing.T) {
	t.Run("Publish and Subscribe after Close fail with ErrClosed; Close again returns nil", func(t *testing.T) {
		bus := newBus(t)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		require.NoError(t, pub.Close())
		require.NoError(t, sub.Close())

		assert.ErrorIs(t, pub.Publish("orders.created", message.NewMessage("u", nil)), eventbus.ErrClosed)
		_, err := sub.Subscribe(context.Background(), "orders.created")
		assert.ErrorIs(t, err, eventbus.ErrClosed)
		assert.ErrorIs(t, sub.SubscribeInitialize("orders.created"), eventbus.ErrClosed)
		assert.NoError(t, pub.Close())
		assert.NoError(t, sub.Close())
	})

	t.Run("Close cancels the context of a message not yet acked and closes the channel", func(t *testing.T) {
		bus := newBus(t)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		msgs, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		require.NoError(t, pub.Publish("orders.created", message.NewMessage("u", nil)))
		msg := receive(t, msgs)

		require.NoError(t, sub.Close())
		_, open := <-msgs
		assert.False(t, open, "the channel is closed when Close returns")
		select {
		case <-msg.Context().Done():
		case <-time.After(waitFor):
			t.Fatal("the message's context was not cancelled")
		}
	})
}

func TestSubscribeCalls(t *testing.T) {
	type key struct{}

	t.Run("a message's context carries the values of Subscribe's ctx and ends with its Ack", func(t *testing.T) {
		bus := newBus(t)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		msgs, err := sub.Subscribe(context.WithValue(context.Background(), key{}, "v"), "orders.created")
		require.NoError(t, err)
		require.NoError(t, pub.Publish("orders.created", message.NewMessage("u", nil)))

		msg := receive(t, msgs)
		assert.Equal(t, "v", msg.Context().Value(key{}))
		require.NoError(t, msg.Context().Err(), "live until settled")
		msg.Ack()
		<-msg.Context().Done()
	})

	t.Run("publishing with a message's Context into a full buffer only its own delivery could drain fails, not waits for ever", func(t *testing.T) {
		bus := newBus(t, eventbus.WithQueueSize(2))
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		msgs, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		for _, id := range []string{"a", "b", "c"} { // one handed out, two fill the buffer
			require.NoError(t, pub.Publish("orders.created", message.NewMessage(id, nil)))
		}
		msg := receive(t, msgs)

		err = pub.Publish("orders.created", message.NewMessageWithContext(msg.Context(), "loop", nil))
		assert.ErrorIs(t, err, eventbus.ErrQueueFull)
		assert.ErrorIs(t, err, eventbus.ErrDeadlock)
		msg.Ack()
	})

	t.Run("a message published while no channel is open waits for the next Subscribe", func(t *testing.T) {
		bus := newBus(t)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		first, err := sub.Subscribe(ctx, "orders.created")
		require.NoError(t, err)
		cancel()
		for range first { // closes once ctx has ended
		}

		require.NoError(t, pub.Publish("orders.created", message.NewMessage("kept", nil)))
		second, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		msg := receive(t, second)
		assert.Equal(t, "kept", msg.UUID)
		msg.Ack()
	})

	t.Run("a message acked after its channel closed is not delivered again", func(t *testing.T) {
		bus := newBus(t)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		first, err := sub.Subscribe(ctx, "orders.created")
		require.NoError(t, err)
		require.NoError(t, pub.Publish("orders.created", message.NewMessage("one", nil), message.NewMessage("two", nil)))
		msg := receive(t, first)
		cancel()
		for range first {
		}
		msg.Ack()

		second, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		next := receive(t, second)
		assert.Equal(t, "two", next.UUID)
		next.Ack()
	})

	t.Run("Subscribe calls on one topic share its messages, whichever channel is read", func(t *testing.T) {
		bus := newBus(t)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		abandoned, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		read, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)

		want := []string{"a", "b", "c"}
		for _, id := range want {
			require.NoError(t, pub.Publish("orders.created", message.NewMessage(id, nil)))
		}
		var got []string
		for range want {
			msg := receive(t, read)
			got = append(got, msg.UUID)
			msg.Ack()
		}
		assert.Equal(t, want, got)
		select {
		case msg := <-abandoned:
			t.Fatalf("message %s was delivered twice", msg.UUID)
		default:
		}
	})

	t.Run("Subscribers of their own each receive every message", func(t *testing.T) {
		bus := newBus(t)
		pub, one := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		_, two := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		msgsOne, err := one.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		msgsTwo, err := two.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)

		require.NoError(t, pub.Publish("orders.created", message.NewMessage("m", nil)))
		for _, msgs := range []<-chan *message.Message{msgsOne, msgsTwo} {
			msg := receive(t, msgs)
			assert.Equal(t, "m", msg.UUID)
			msg.Ack()
		}
	})
}

func TestNack(t *testing.T) {
	t.Run("a nacked message comes again, as a new message, before the next one", func(t *testing.T) {
		bus := newBus(t)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		msgs, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		require.NoError(t, pub.Publish("orders.created", message.NewMessage("one", []byte("p")), message.NewMessage("two", nil)))

		first := receive(t, msgs)
		first.Nack()
		again := receive(t, msgs)
		assert.Equal(t, "one", again.UUID)
		assert.Equal(t, []byte("p"), []byte(again.Payload))
		assert.NotSame(t, first, again)
		again.Ack()
		next := receive(t, msgs)
		assert.Equal(t, "two", next.UUID)
		next.Ack()
	})

	t.Run("after MaxAttempts nacks the message is dead-lettered with ErrNacked", func(t *testing.T) {
		bus := newBus(t)
		letters := make(chan eventbus.DeadLetter, 1)
		_, err := eventbus.DeadLetters(bus).Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.DeadLetter]) error {
			letters <- ev.Payload
			return nil
		})
		require.NoError(t, err)
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{MaxAttempts: 2})
		msgs, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		require.NoError(t, pub.Publish("orders.created", message.NewMessage("poison", nil), message.NewMessage("next", nil)))

		for range 2 {
			msg := receive(t, msgs)
			require.Equal(t, "poison", msg.UUID)
			msg.Nack()
		}
		next := receive(t, msgs)
		assert.Equal(t, "next", next.UUID)
		next.Ack()

		dl := <-letters
		assert.Equal(t, 2, dl.Attempts)
		assert.Equal(t, "orders.created", dl.Topic)
		assert.Contains(t, dl.Error, eventbuswatermill.ErrNacked.Error())
		assert.Equal(t, eventbuswatermill.Message{UUID: "poison"}, dl.Payload)
	})

	t.Run("the bus's error handler can tell a nack with errors.Is", func(t *testing.T) {
		nacked := make(chan bool, 1)
		bus := newBus(t, eventbus.WithErrorHandler(func(he *eventbus.HandlerError) {
			nacked <- errors.Is(he, eventbuswatermill.ErrNacked)
		}))
		pub, sub := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
		msgs, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		require.NoError(t, pub.Publish("orders.created", message.NewMessage("m", nil)))
		receive(t, msgs).Nack()
		assert.True(t, <-nacked)
		receive(t, msgs).Ack()
	})
}

// TestSubscriberWithoutGroupOverNATS covers what Watermill's suite does
// not, as it gives its NATS Subscribers a group: without one, a Subscriber
// holds an ephemeral consumer per topic, from SubscribeInitialize (or its
// first Subscribe) until Close.
func TestSubscriberWithoutGroupOverNATS(t *testing.T) {
	nc, names := natstest.Connect(t)
	tr, err := natsbus.New(nc, names.Options()...)
	require.NoError(t, err)
	bus := newBus(t, eventbus.WithTransport(tr))
	pub, one := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
	_, two := newPubSub(t, bus, eventbuswatermill.SubscriberConfig{})
	require.NoError(t, one.SubscribeInitialize("orders.created"))
	require.NoError(t, two.SubscribeInitialize("orders.created"))

	msg := message.NewMessage("m1", []byte("p"))
	msg.Metadata.Set("trace", "t-1")
	require.NoError(t, pub.Publish("orders.created", msg, message.NewMessage("m2", nil)))

	for _, sub := range []*eventbuswatermill.Subscriber{one, two} {
		msgs, err := sub.Subscribe(context.Background(), "orders.created")
		require.NoError(t, err)
		first := receive(t, msgs)
		assert.Equal(t, "m1", first.UUID)
		assert.Equal(t, "t-1", first.Metadata.Get("trace"))
		first.Nack()
		again := receive(t, msgs)
		assert.Equal(t, "m1", again.UUID, "redelivered before the next")
		again.Ack()
		second := receive(t, msgs)
		assert.Equal(t, "m2", second.UUID)
		second.Ack()
	}
}
