package eventbuswatermill_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbuswatermill"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
	"github.com/stretchr/testify/require"
)

// memoryFeatures describe the in-memory bus to Watermill's suite; the
// README says why each flag is set so.
var memoryFeatures = tests.Features{
	ConsumerGroups:                   false, // the in-memory bus has no eventbus.Group
	ExactlyOnceDelivery:              true,  // each event reaches each subscription once; only a Nack redelivers
	GuaranteedOrder:                  true,  // Concurrency 1: one message in flight, in publish order
	Persistent:                       false, // a closed Subscriber's events are gone, and a new one starts with new events
	RequireSingleInstance:            true,  // a Subscriber made after a publish does not receive it
	NewSubscriberReceivesOldMessages: false,
	ContextPreserved:                 false, // events carry Metadata, not a context
}

// natsFeatures describe a bus over natsbus, with the Subscribers of the
// plain constructor in one consumer group, to Watermill's suite.
var natsFeatures = tests.Features{
	ConsumerGroups:                      true,  // eventbus.Group: a durable consumer shared by its members
	ExactlyOnceDelivery:                 false, // at least once: a message not acked in time, or when its subscriber closes, comes again
	GuaranteedOrder:                     true,  // Concurrency 1 is MaxAckPending 1 for the whole group
	GuaranteedOrderWithSingleSubscriber: false, // ... however many members it has
	Persistent:                          true,  // the group's durable consumer keeps the events across Subscribers and processes
	RequireSingleInstance:               false,
	NewSubscriberReceivesOldMessages:    false, // a new consumer starts with the events published after it
	ContextPreserved:                    false,
	// The full counts (10000 messages to publish, 5000 read back in
	// batches) cost a broker round trip each, one at a time with
	// Concurrency 1: minutes of CI under -race on two cores.
	ForceShort: true,
}

// TestWatermillSuiteInMemory runs Watermill's own Pub/Sub suite against a
// Publisher and a Subscriber on an in-memory bus, a new one per pair.
func TestWatermillSuiteInMemory(t *testing.T) {
	tests.TestPubSub(t, memoryFeatures, func(t *testing.T) (message.Publisher, message.Subscriber) {
		return newPubSub(t, newBus(t), eventbuswatermill.SubscriberConfig{})
	}, nil)
}

// TestWatermillSuiteOverNATS runs Watermill's own Pub/Sub suite against
// Publishers and Subscribers on buses over natsbus, one bus and connection
// per pair, as if each were a process of its own, all on one server and
// stream: an embedded server, or the one at $EVENTBUS_NATS_URL. The plain
// constructor's Subscribers share the consumer group "suite" (topics are
// new in every test, and so are the group's consumers).
func TestWatermillSuiteOverNATS(t *testing.T) {
	srv := natstest.Start(t)
	names := srv.Names(t)
	newPubSubOnNATS := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		tr, err := natsbus.New(srv.Connect(t), names.Options()...)
		require.NoError(t, err)
		// A 2.9 server (Debian's, the machine's in CI) offers a message
		// that a closing Subscriber gave back from its fetched batch again
		// only after AckWait; the suite waits 15 s for its messages, so
		// the group's AckWait is kept well under that. Nothing is lost
		// with the default either, only later.
		bus := newBus(t, eventbus.WithTransport(tr), eventbus.WithAckWait(2*time.Second))
		return newPubSub(t, bus, eventbuswatermill.SubscriberConfig{ConsumerGroup: group})
	}
	tests.TestPubSub(t, natsFeatures, func(t *testing.T) (message.Publisher, message.Subscriber) {
		return newPubSubOnNATS(t, "suite")
	}, newPubSubOnNATS)
}
