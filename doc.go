// Package eventbus is typed publish/subscribe for one process, able to
// scale out onto NATS JetStream (package natsbus) without changing a line of
// the typed code.
//
// A Bus is a registry of topics. A Topic[T] carries events whose payload has
// the Go type T, so publishers and subscribers agree on the payload at
// compile time:
//
//	bus, err := eventbus.New()
//	...
//	defer bus.Close(ctx)
//
//	prices := eventbus.MustTopic[Price](bus, "market.price")
//	sub, err := prices.Subscribe(func(ctx context.Context, ev eventbus.Event[Price]) error {
//		fmt.Println(ev.Payload.Symbol, ev.Payload.Last)
//		return nil
//	})
//	...
//	err = prices.Publish(ctx, Price{Symbol: "BTCUSDT", Last: 42350.5})
//
// # Delivery
//
// Each subscription has its own bounded buffer and goroutine, and receives
// the events of its topic in publish order; a slow subscription never holds
// up another until its own buffer is full, and then its OnFull policy decides
// (Block, the default, loses nothing). Sync subscriptions run inline in the
// publisher instead. Every event that Publish accepted reaches every
// subscription that existed when it was published, unless that
// subscription's policy dropped it or it unsubscribed.
//
// A handler's error or panic never stops the bus or another handler: it is
// counted in Stats, logged with log/slog, and passed to the function given to
// WithErrorHandler as a *HandlerError.
//
// # Shutting down
//
// Close stops intake, waits until every accepted event has been handled and
// every delivery goroutine has exited, or gives up when its ctx ends. No
// goroutine of the bus outlives a Close that returned nil.
//
// # Across processes: transports
//
// When one process is not enough, WithTransport puts a broker between the
// publishers and the subscribers, and the typed code stays as it is:
//
//	nc, err := nats.Connect("nats://127.0.0.1:4222")
//	...
//	tr, err := natsbus.New(nc) // stream EVENTS, subjects events.<topic>
//	...
//	bus, err := eventbus.New(eventbus.WithTransport(tr))
//
// Publish then returns once the broker has stored the event (or, with a
// transport that publishes asynchronously, once it is queued: see
// AsyncPublisher), and every subscription of the topic, in any process,
// receives it: at least once, acknowledged after its handler returns nil,
// retried in process with Retry's backoff, then dead-lettered. Name makes
// a subscription durable across restarts; Group shares one among
// processes, each event going to one of them, each member handling up to
// its Concurrency at once; AckWait sets how soon a dead member's events go
// to another. Close waits until the bus's consumers have handled what the broker
// held for them. Sync, PartitionBy, OnFull other than Block and
// PublishWait need the publisher and the handlers in one process and are
// refused with errors.ErrUnsupported; WithTransport lists every difference.
//
// A Transport is small and engine-neutral, bytes and headers only: the bus
// encodes payloads with its Codec (JSON by default) into an Envelope, and
// the Transport stores and delivers it. Package natsbus implements it on
// NATS JetStream; this package imports no broker's code. The in-memory bus
// does not go through a Transport and pays nothing for their existence.
package eventbus
