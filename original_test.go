package eventbus_test

// Ports of the tests of the Python bus this library replaces (see
// shared/seed/original-system.md), one per original test, named after it.
// Tests 2, 3, 14 and 15 use the trading event kinds and live in
// original_kinds_test.go.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "test.event")
	_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		return errors.New("handler error")
	})
	require.NoError(t, err)
	good, got := collect[int](2)
	_, err = topic.Subscribe(good)
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), 1))
	require.NoError(t, topic.Publish(context.Background(), 2))

	assert.Equal(t, []int{1, 2}, receive(t, got, 2))
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

	assert.GreaterOrEqual(t, bus.Stats().Errors, uint64(2))
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

func TestOriginal18SubscriptionMadeBeforePublishingGetsTheEvent(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[string](bus, "test.event")
	h, got := collect[string](1)
	_, err := topic.Subscribe(h)
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), "later"))

	assert.Equal(t, []string{"later"}, receive(t, got, 1))
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
