package eventbus_test

// Ports of the tests of the Python bus this library replaces (see
// shared/seed/original-system.md), one per original test, named after it.
// Tests 2, 3, 14 and 15 use the trading event kinds and live in
// original_kinds_test.go.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumtrader/eventbus"
)

type payload map[string]any

func TestOriginal01EventKeepsTypeTimeAndPayload(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[payload](bus, "test.event")
	events := make(chan eventbus.Event[payload], 1)
	_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[payload]) error {
		events <- ev
		return nil
	})
	require.NoError(t, err)

	before := time.Now()
	require.NoError(t, topic.Publish(context.Background(), payload{"key": "value"}))
	ev := receive(t, events, 1)[0]

	assert.Equal(t, "test.event", ev.Topic)
	assert.Equal(t, payload{"key": "value"}, ev.Payload)
	assert.WithinRange(t, ev.Time, before.Add(-time.Millisecond), time.Now().Add(time.Millisecond))
	assert.Equal(t, time.UTC, ev.Time.Location())
	assert.False(t, ev.ID.IsZero())
}

func TestOriginal04OneHandlerGetsExactlyTheOneEvent(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[payload](bus, "test.event")
	var calls atomic.Int64
	var got eventbus.Event[payload]
	_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[payload]) error {
		calls.Add(1)
		got = ev
		return nil
	})
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), payload{"data": "test"}))
	closeBus(t, bus)

	assert.EqualValues(t, 1, calls.Load())
	assert.Equal(t, "test.event", got.Topic)
	assert.Equal(t, payload{"data": "test"}, got.Payload)
}

func TestOriginal05TwoHandlersAreEachCalledOnce(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[payload](bus, "test.event")
	var calls1, calls2 atomic.Int64
	for _, c := range []*atomic.Int64{&calls1, &calls2} {
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[payload]) error {
			c.Add(1)
			return nil
		})
		require.NoError(t, err)
	}

	require.NoError(t, topic.Publish(context.Background(), payload{}))
	closeBus(t, bus)

	assert.EqualValues(t, 1, calls1.Load())
	assert.EqualValues(t, 1, calls2.Load())
}

func TestOriginal06EventsAreRoutedByType(t *testing.T) {
	bus := newBus(t)
	a := eventbus.MustTopic[string](bus, "type.a")
	b := eventbus.MustTopic[string](bus, "type.b")
	ha, gotA := collect[string](2)
	hb, gotB := collect[string](2)
	_, err := a.Subscribe(ha)
	require.NoError(t, err)
	_, err = b.Subscribe(hb)
	require.NoError(t, err)

	require.NoError(t, a.Publish(context.Background(), "for a"))
	require.NoError(t, b.Publish(context.Background(), "for b"))
	closeBus(t, bus)

	assert.Equal(t, []string{"for a"}, drain(gotA))
	assert.Equal(t, []string{"for b"}, drain(gotB))
}

func TestOriginal07UnsubscribedHandlerIsNotCalledAgain(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[payload](bus, "test.event")
	var calls atomic.Int64
	sub, err := topic.Subscribe(func(context.Context, eventbus.Event[payload]) error {
		calls.Add(1)
		return nil
	})
	require.NoError(t, err)

	require.NoError(t, topic.PublishWait(context.Background(), payload{}))
	require.EqualValues(t, 1, calls.Load())
	require.NoError(t, sub.Unsubscribe())
	require.NoError(t, topic.Publish(context.Background(), payload{}))
	closeBus(t, bus)

	assert.EqualValues(t, 1, calls.Load())
}

func TestOriginal08SyncHandlerIsCalledWithThePayload(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[payload](bus, "test.event")
	var got payload
	_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[payload]) error {
		got = ev.Payload
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), payload{"sync": true}))

	assert.Equal(t, payload{"sync": true}, got, "a Sync handler has run when Publish returns")
}

func TestOriginal09FailingHandlerDoesNotStopAGoodOne(t *testing.T) {
	// Twenty events rather than the original's two, so that a Sync
	// publish takes both of its paths: the first 16 publishes time every
	// handler call, later ones call the handlers in one loop.
	const events = 20
	tests := []struct {
		name string
		fail eventbus.Handler[int]
		opts []eventbus.SubOption
	}{
		{"an asynchronous handler that returns an error", func(context.Context, eventbus.Event[int]) error {
			return errors.New("handler error")
		}, nil},
		{"an asynchronous handler that panics", func(context.Context, eventbus.Event[int]) error {
			panic("handler panic")
		}, nil},
		// Sync handlers run one after the other in the publisher's
		// goroutine, the failing one first: there a failure could stop
		// the good one.
		{"a Sync handler that returns an error", func(context.Context, eventbus.Event[int]) error {
			return errors.New("handler error")
		}, []eventbus.SubOption{eventbus.Sync()}},
		{"a Sync handler that panics", func(context.Context, eventbus.Event[int]) error {
			panic("handler panic")
		}, []eventbus.SubOption{eventbus.Sync()}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" does not stop a good one subscribed after it", func(t *testing.T) {
			var mu sync.Mutex
			var reported []*eventbus.HandlerError
			bus := newBus(t, eventbus.WithErrorHandler(func(he *eventbus.HandlerError) {
				mu.Lock()
				reported = append(reported, he)
				mu.Unlock()
			}))
			topic := eventbus.MustTopic[int](bus, "test.event")
			failing, err := topic.Subscribe(tt.fail, append(tt.opts, eventbus.Name("failing"))...)
			require.NoError(t, err)
			h, got := collect[int](events)
			good, err := topic.Subscribe(h, append(tt.opts, eventbus.Name("good"))...)
			require.NoError(t, err)

			want := make([]int, events)
			for n := range events {
				want[n] = n + 1
				require.NoError(t, topic.Publish(context.Background(), n+1))
			}
			closeBus(t, bus)

			assert.Equal(t, want, drain(got), "the good handler got every event, in order")
			gs := good.Stats()
			assert.EqualValues(t, events, gs.Delivered)
			assert.Zero(t, gs.Errors)
			fs := failing.Stats()
			assert.EqualValues(t, events, fs.Errors, "every call of the failing handler is counted as an error")
			assert.Zero(t, fs.Delivered)
			assert.EqualValues(t, events, bus.Stats().Errors)
			require.Len(t, reported, events, "every failure is reported")
			for _, he := range reported {
				assert.Equal(t, "failing", he.Subscriber)
				assert.Equal(t, "test.event", he.Topic)
			}
		})
	}
}

func TestOriginal10BusGoesOnAfterAFailedCall(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "test.event")
	var calls atomic.Int64
	handled := make(chan int, 2)
	_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
		if calls.Add(1) == 1 {
			return errors.New("first call fails")
		}
		handled <- ev.Payload
		return nil
	})
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), 1))
	require.NoError(t, topic.Publish(context.Background(), 2))

	assert.Equal(t, []int{2}, receive(t, handled, 1))
}

func TestOriginal11StatsCountPublishedAndDispatched(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "test.event")
	_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return nil })
	require.NoError(t, err)

	for i := range 3 {
		require.NoError(t, topic.Publish(context.Background(), i))
	}
	closeBus(t, bus)

	st := bus.Stats()
	assert.EqualValues(t, 3, st.Published)
	assert.EqualValues(t, 3, st.Dispatched)
	assert.EqualValues(t, 3, st.Delivered)
}

func TestOriginal12StatsCountErrors(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "test.event")
	_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		return errors.New("always fails")
	})
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), 1))
	require.NoError(t, topic.Publish(context.Background(), 2))
	closeBus(t, bus)

	// Exactly two: the original's ">= 2" would let a failure counted twice
	// pass.
	assert.EqualValues(t, 2, bus.Stats().Errors, "one error per failed call")
}

func TestOriginal13StatsCountHandlerTypesAndHandlers(t *testing.T) {
	bus := newBus(t)
	nop := func(context.Context, eventbus.Event[int]) error { return nil }
	a := eventbus.MustTopic[int](bus, "type.a")
	b := eventbus.MustTopic[int](bus, "type.b")
	for _, topic := range []*eventbus.Topic[int]{a, a, b} {
		_, err := topic.Subscribe(nop)
		require.NoError(t, err)
	}

	st := bus.Stats()
	assert.Equal(t, 2, st.HandlerTypes)
	assert.Equal(t, 3, st.TotalHandlers)
}

func TestOriginal16HundredEventsAreAllProcessedOnce(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "test.event")
	h, got := collect[int](100)
	_, err := topic.Subscribe(h)
	require.NoError(t, err)

	for n := range 100 {
		require.NoError(t, topic.Publish(context.Background(), n))
	}
	closeBus(t, bus)

	values := drain(got)
	require.Len(t, values, 100)
	seen := make(map[int]int)
	for _, v := range values {
		seen[v]++
	}
	for n := range 100 {
		assert.Equal(t, 1, seen[n], "value %d", n)
	}
}

func TestOriginal17PublishWithoutSubscribersIsCounted(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "test.event")

	require.NoError(t, topic.Publish(context.Background(), 1))

	st := bus.Stats()
	assert.EqualValues(t, 1, st.Published)
	assert.EqualValues(t, 1, st.NoSubscribers)
}

// The original bus ran only once run_forever was started, and a handler
// subscribed before that still got the event published later. A Bus has no
// start: New starts no goroutine, and the first subscription starts the
// bus's. So the port subscribes on a bus that runs nothing yet, and checks
// that the subscription, made before anything ran, gets the later event.
func TestOriginal18SubscriptionMadeBeforeTheBusRunsGetsTheLaterEvent(t *testing.T) {
	before := goleak.IgnoreCurrent()
	bus := newBus(t)
	topic := eventbus.MustTopic[string](bus, "test.event")
	require.NoError(t, goleak.Find(before), "a new bus runs no goroutine until its first subscription")
	h, got := collect[string](1)
	_, err := topic.Subscribe(h)
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), "later"))

	assert.Equal(t, []string{"later"}, receive(t, got, 1))
	closeBus(t, bus)
	st := bus.Stats()
	assert.EqualValues(t, 1, st.Delivered)
	assert.Zero(t, st.NoSubscribers)
}

// drain returns what a closed-over channel holds once its producers are done.
func drain[T any](ch chan T) []T {
	var out []T
	for {
		select {
		case v := <-ch:
			out = append(out, v)
		default:
			return out
		}
	}
}
