package eventbus_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// quiet discards the bus's log, for tests whose handlers fail on purpose.
var quiet = eventbus.WithLogger(slog.New(slog.DiscardHandler))

// newBus returns a bus that the test closes at its end, failing if Close
// does not drain within a generous deadline.
func newBus(t testing.TB, opts ...eventbus.Option) *eventbus.Bus {
	t.Helper()
	bus, err := eventbus.New(append([]eventbus.Option{quiet}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := bus.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return bus
}

// collect returns a handler that sends every payload to the returned channel.
func collect[T any](n int) (eventbus.Handler[T], chan T) {
	ch := make(chan T, n)
	return func(_ context.Context, ev eventbus.Event[T]) error {
		ch <- ev.Payload
		return nil
	}, ch
}

// receive waits for n values from ch, failing the test after a deadline.
func receive[T any](t testing.TB, ch <-chan T, n int) []T {
	t.Helper()
	out := make([]T, 0, n)
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-deadline:
			t.Fatalf("received %d of %d values before the deadline", len(out), n)
		}
	}
	return out
}

// closeBus closes bus and requires success.
func closeBus(t testing.TB, bus *eventbus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, bus.Close(ctx))
}
