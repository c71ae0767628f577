package eventbuswatermill_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbuswatermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine outlives the tests: a Subscriber's
// watchers, the bus's workers and the transports' pullers must all have
// ended with Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor bounds every wait for a message in the package's own tests.
const waitFor = 15 * time.Second

// newBus returns a bus closed when the test ends, after everything
// registered later (Publishers and Subscribers) has been closed. It logs
// only errors: Watermill consumers nack as a matter of course, and every
// nack is a failed handler call the bus would log as a warning.
func newBus(t *testing.T, opts ...eventbus.Option) *eventbus.Bus {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	bus, err := eventbus.New(append([]eventbus.Option{eventbus.WithLogger(logger)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, bus.Close(ctx), "bus.Close")
	})
	return bus
}

// newPubSub returns a Publisher and a Subscriber on bus, closed when the
// test ends (before the bus).
func newPubSub(t *testing.T, bus *eventbus.Bus, cfg eventbuswatermill.SubscriberConfig) (*eventbuswatermill.Publisher, *eventbuswatermill.Subscriber) {
	t.Helper()
	pub, err := eventbuswatermill.NewPublisher(bus)
	require.NoError(t, err)
	sub, err := eventbuswatermill.NewSubscriber(bus, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, sub.Close(), "Subscriber.Close")
		assert.NoError(t, pub.Close(), "Publisher.Close")
	})
	return pub, sub
}

// receive returns the next message of msgs, failing the test after waitFor
// or if msgs is closed.
func receive(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-msgs:
		require.True(t, ok, "the channel closed")
		return msg
	case <-time.After(waitFor):
		require.FailNow(t, "no message")
		return nil
	}
}
