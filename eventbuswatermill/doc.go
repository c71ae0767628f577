// Package eventbuswatermill lets Watermill code publish and subscribe
// through an eventbus.Bus: Publisher is a message.Publisher and Subscriber
// a message.Subscriber (and message.SubscribeInitializer), so a Watermill
// router, its middleware and its handlers run unchanged on the in-memory
// bus or, with natsbus, on NATS JetStream.
//
//	bus, err := eventbus.New() // or eventbus.New(eventbus.WithTransport(tr))
//	...
//	pub, err := eventbuswatermill.NewPublisher(bus)
//	sub, err := eventbuswatermill.NewSubscriber(bus, eventbuswatermill.SubscriberConfig{})
//	...
//	msgs, err := sub.Subscribe(ctx, "orders.created")
//	err = pub.Publish("orders.created", message.NewMessage(watermill.NewUUID(), payload))
//
// # Topics and messages
//
// A Watermill topic is the bus topic of the same name, whose payload type
// is Message; typed eventbus code can publish and subscribe to the same
// topic with eventbus.NewTopic[Message]. Topic names follow the eventbus
// rules (dot-separated tokens of letters, digits, '_' and '-'); any other
// name is refused with an error wrapping eventbus.ErrInvalidTopic, with no
// mapping: a name the adapter rewrote could collide with another.
//
// A message's UUID and Payload travel in Message; its Metadata is the
// event's Metadata (on NATS, headers), so correlation ids and trace context
// reach eventbus subscribers too. The event gets an ID of its own from the
// bus: Watermill UUIDs need not be unique across topics, while an event ID
// is the broker's de-duplication key.
//
// # Acknowledgement
//
// Each subscription on the bus runs a handler that hands the message to a
// Subscribe channel and waits: Ack makes the handler return nil, Nack makes
// it return an error, so the bus retries the event (eventbus.Retry,
// SubscriberConfig.MaxAttempts, unlimited by default) and the channel
// receives it again as a new *message.Message. With Concurrency 1, the
// default, the next message is delivered only after the previous one is
// acknowledged, in publish order.
//
// # Subscribers are consumers
//
// Without a ConsumerGroup, a Subscriber is one consumer of each topic it
// subscribes to: its first Subscribe or SubscribeInitialize of a topic
// subscribes it to the bus, and that subscription lasts until Close,
// keeping the events published meanwhile (in memory, in the subscription's
// buffer, which blocks publishers when full; on a transport, in an
// ephemeral consumer) even while no Subscribe channel is open. Several
// Subscribe calls on one topic share its events: each message goes to one
// of the channels being read. For every reader to receive every message,
// give each its own Subscriber.
//
// With a ConsumerGroup (a transport only: the in-memory bus has no groups),
// each Subscribe is one member of eventbus.Group: the group's durable
// consumer on the broker keeps the events between Subscribe calls and
// across processes, and shares them among the members.
//
// # Contexts and closing
//
// A received message's Context derives from the ctx given to Subscribe and
// is cancelled once the message is settled (acked, nacked, or abandoned by
// Close). Behind Subscribe's values it has those of the ctx the bus gave
// the handler, which mark the delivery: a consumer that publishes with it
// (message.NewMessageWithContext(msg.Context(), ...)) is known to the bus
// as that delivery, so a publish into a full buffer only the delivery
// itself could drain fails with eventbus.ErrQueueFull rather than waiting
// for ever. Cancelling Subscribe's ctx closes that channel: a message not
// yet handed out goes to another channel or waits for the next Subscribe;
// one already handed out can still be acked or nacked until the Subscriber
// closes (with a ConsumerGroup, until the channel closes, after which the
// broker redelivers it). Close closes every channel and ends the
// Subscriber's subscriptions on the bus; a message handed out and not yet
// acked is then dropped in memory and redelivered by the broker on a
// transport. Neither Publisher nor Subscriber closes the bus: close them
// before it.
package eventbuswatermill
