package eventbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

func TestHandlerPublishingToItsOwnFullQueueGetsAnErrorInsteadOfADeadlock(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "loop")
	// The handler sends the results of its two publishes here, for the
	// test's goroutine to check: require may not stop the handler's.
	results := make(chan error, 2)
	var handled []int
	_, err := topic.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
		handled = append(handled, ev.Payload)
		if ev.Payload == 0 {
			results <- topic.Publish(ctx, 1) // fills the buffer of one
			results <- topic.Publish(ctx, 2) // only this very handler could make room
		}
		return nil
	}, eventbus.Queue(1), eventbus.Name("looper"))
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), 0))
	errs := receive(t, results, 2)
	closeBus(t, bus)
	require.NoError(t, errs[0], "the publish that fills the buffer")
	err = errs[1]

	assert.ErrorIs(t, err, eventbus.ErrQueueFull)
	assert.ErrorIs(t, err, eventbus.ErrDeadlock)
	assert.ErrorContains(t, err, "looper")
	assert.Equal(t, []int{0, 1}, handled, "the refused event was not delivered; the others were")
}

func TestHandlerChainAToBToAGetsAnErrorInsteadOfADeadlock(t *testing.T) {
	bus := newBus(t)
	a := eventbus.MustTopic[int](bus, "a")
	b := eventbus.MustTopic[int](bus, "b")
	gateA, gateB := make(chan struct{}), make(chan struct{})
	busyA, busyB := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var errs []error
	var both sync.WaitGroup
	both.Add(2)
	record := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		both.Done()
	}
	// Each handler, on its first event, waits at its gate and then publishes
	// to the other topic, whose one-slot buffer is full.
	_, err := a.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 0 {
			close(busyA)
			<-gateA
			record(b.Publish(ctx, 100))
		}
		return nil
	}, eventbus.Queue(1), eventbus.Name("handler-a"))
	require.NoError(t, err)
	_, err = b.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 0 {
			close(busyB)
			<-gateB
			record(a.Publish(ctx, 200))
		}
		return nil
	}, eventbus.Queue(1), eventbus.Name("handler-b"))
	require.NoError(t, err)

	require.NoError(t, a.Publish(context.Background(), 0))
	<-busyA
	require.NoError(t, a.Publish(context.Background(), 1)) // a's buffer is full
	require.NoError(t, b.Publish(context.Background(), 0))
	<-busyB
	require.NoError(t, b.Publish(context.Background(), 1)) // b's buffer is full
	close(gateA)
	close(gateB)
	both.Wait() // returns: the cycle was broken
	closeBus(t, bus)

	require.Len(t, errs, 2)
	var deadlocks int
	for _, err := range errs {
		if err == nil {
			continue
		}
		require.ErrorIs(t, err, eventbus.ErrDeadlock)
		assert.ErrorIs(t, err, eventbus.ErrQueueFull)
		assert.ErrorContains(t, err, "handler-a")
		assert.ErrorContains(t, err, "handler-b")
		deadlocks++
	}
	assert.GreaterOrEqual(t, deadlocks, 1, "at least one side saw the cycle; the other then got room")
}

func TestHandlerWaitingOnASlowButWorkingSubscriberJustWaits(t *testing.T) {
	bus := newBus(t)
	a := eventbus.MustTopic[int](bus, "a")
	b := eventbus.MustTopic[int](bus, "b")
	h, got := collect[int](100)
	_, err := b.Subscribe(h, eventbus.Queue(1))
	require.NoError(t, err)
	var publishErr error
	_, err = a.Subscribe(func(ctx context.Context, _ eventbus.Event[int]) error {
		for n := range 100 {
			if err := b.Publish(ctx, n); err != nil {
				publishErr = errors.Join(publishErr, err)
			}
		}
		return nil
	})
	require.NoError(t, err)

	require.NoError(t, a.PublishWait(context.Background(), 0))
	closeBus(t, bus)

	assert.NoError(t, publishErr)
	assert.Len(t, drain(got), 100)
}
