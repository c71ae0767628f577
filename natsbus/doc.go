// Package natsbus carries eventbus topics across processes on NATS
// JetStream. New returns an eventbus.Transport for eventbus.WithTransport;
// the typed layer of package eventbus encodes events, retries and
// dead-letters, and this package maps its envelopes and consumers onto
// JetStream. The root package never imports NATS: only programs that
// import natsbus do.
//
//	nc, err := nats.Connect(url)
//	...
//	defer nc.Close()
//	tr, err := natsbus.New(nc)              // stream EVENTS on events.>
//	...
//	bus, err := eventbus.New(eventbus.WithTransport(tr))
//
// # Stream and subjects
//
// All topics share one stream (WithStream, default "EVENTS") with limits
// retention, capturing the subjects prefix + ".>" (WithSubjectPrefix,
// default "events"). New creates the stream, or updates the settings its
// options govern (subjects, retention, max age, duplicate window) and
// keeps the rest. Topic "trade.executed" travels on subject
// "events.trade.executed"; topic names follow the eventbus rules
// (dot-separated tokens of letters, digits, '-' and '_'), so a subject is
// never a wildcard.
//
// # Messages
//
// An envelope is one stream message. Its Data is the message body; the
// rest is in headers with exactly these names:
//
//	Nats-Msg-Id           the event ID, canonical UUID text: the stream drops a
//	                      second publish of it within the duplicate window
//	Nats-Expected-Stream  the stream name: the broker refuses the event if
//	                      another stream captures the subject
//	eventbus-type         the topic (HeaderType)
//	eventbus-time         the publish time, RFC 3339 with nanoseconds, UTC (HeaderTime)
//	eventbus-meta-<key>   one per metadata entry, key and value percent-encoded
//	                      (HeaderMetadataPrefix)
//
// Publish returns once the stream has stored the event (the JetStream
// publish acknowledgement). A message that another client published on the
// stream's subjects is delivered too, with what can be read from it: the
// topic from the subject, the time the stream stored it, and the zero ID
// unless Nats-Msg-Id is a UUID.
//
// # Consumers
//
// Each Subscribe is one pull consumer with explicit acknowledgement,
// filtered on the topic's subject:
//
//   - SubscribeOptions.Name: a durable consumer that survives process
//     restarts and resumes after the last acknowledged event.
//   - SubscribeOptions.Group: a durable consumer shared by all members of
//     the group, in any process; each event goes to one member.
//   - neither: an ephemeral consumer for one receiver, deleted by Stop once
//     its deliveries are settled (and by the broker a minute after its
//     process vanished).
//
// Subscriptions that do not share a group each get every event. A new
// consumer starts with the events published after it, or with the last
// stored event of its topic if SubscribeOptions.Replay is set. AckWait is
// the consumer's AckWait (default DefaultAckWait; eventbus.AckWait sets it
// per subscription).
//
// Each receiver fetches a batch of messages ahead of its handlers
// (WithPullBatch, default DefaultPullBatch) and hands them out in stream
// order; MaxInFlight is how many of them its handlers work on at once.
// The consumer's MaxAckPending, the broker's bound on events handed out
// and not acknowledged, is 32 times (batch + MaxInFlight): room for 32
// members of a group, or processes sharing a Name, each with a full batch
// and its handlers busy, so that members never wait for each other, and a
// member that dies holding its share does not stop the rest. Its events
// come back after AckWait, to whichever member asks first. Order: a
// receiver hands out its messages in stream order, and eventbus retries a
// failed event in process before its worker takes the next, so a
// subscription with Concurrency(1) handles its events in publish order,
// retries included. In a group that holds per member, not across the
// group: two members work on different events of the topic at the same
// time, and events a dead member held arrive after later ones.
//
// eventbus.PartitionBy is refused on a transport (errors.ErrUnsupported):
// keeping each key's order across the members of a group needs the
// broker to route a key to one member, and JetStream's way to do that
// (one consumer per subject partition, each pinned to one member) moves
// partitions between members only by hand; a partition mapping that
// spreads keys over members and rebalances when one dies is not built.
//
// Durable consumer names are derived from the topic and the name or group:
// any byte other than a letter, digit, '-' or '_' becomes '_', the result is
// cut to 64 bytes, and '_' plus 16 hex digits of a SHA-256 of the kind
// (name or group), topic and name is appended, e.g.
// "trade_executed-ledger_f869c18adce5a88e". So any string is a valid Name or
// Group, distinct ones never share a consumer, and operators can still
// tell what a consumer is for (its description quotes the original name).
// Ephemeral consumers are named after the topic and 16 random hex digits.
//
// Receivers implement eventbus.Drainer: Drain waits until the consumer has
// settled every event the stream held for it when Drain began, by asking
// the broker for the consumer's acknowledgement floor. The bus's Close
// calls it, so that a bus closes only once its consumers have handled
// their backlog.
//
// # Delivery
//
// Delivery is at least once. Delivery.Attempt is JetStream's delivery
// count. Ack is a plain ack, as in nats bench: a publish on the connection
// that does not wait for the broker's reply; InProgress, which resets
// AckWait, is one too. An ack that is lost (the connection broke) only
// means the event is delivered again after AckWait. Retry(delay) is a nak
// with that delay (the consumer's BackOff does not apply to naks, so the
// typed layer computes the delay) and Reject terminates the message so it
// is never redelivered: both wait for the broker's reply, so an error
// means it may not have been recorded. Stopping a receiver gives back the
// messages it had fetched and not handed out, with a nak, and flushes the
// connection, so the broker has every ack sent before it. A durable
// receiver's Stop also naks what it handed out and is still unsettled, so
// the consumer's next receiver gets it at once rather than after AckWait;
// a later ack or reject by the holder is still sent. An event not
// acknowledged within AckWait, for instance because its process died, is
// delivered again. Stopping a consumer process mid-stream and starting it
// again therefore loses nothing, and may repeat events that were being
// handled, or were fetched and unacknowledged, when it stopped: handlers
// must tolerate seeing an event twice.
//
// While the connection is reconnecting, Publish waits (bounded by its ctx
// or WithTimeout) and fails with an error that names the subject and the
// connection's state; receivers wait and resume when the broker is back,
// with their consumers as the broker stored them. A consumer the broker
// lost is recreated.
//
// # Errors
//
// natsbus uses the sentinels of package eventbus: ErrInvalidOption for a
// bad option, ErrInvalidTopic for a bad topic, ErrClosed after Close or
// Stop. Errors from the broker or the client are wrapped, with the subject.
//
// # Testing
//
// Package natsbus/natstest starts an embedded JetStream server per test, or
// uses the server at $EVENTBUS_NATS_URL with a stream of the test's own.
package natsbus
