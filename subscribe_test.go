package eventbus_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

func TestSubscriptionsReceiveEventsInPublishOrder(t *testing.T) {
	const events = 100_000
	bus := newBus(t, eventbus.WithQueueSize(1024))
	topic := eventbus.MustTopic[int](bus, "ticks")
	var next [3]int
	for i := range next {
		_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
			if ev.Payload != next[i] {
				t.Errorf("subscriber %d got %d, want %d", i, ev.Payload, next[i])
			}
			next[i] = ev.Payload + 1
			return nil
		})
		require.NoError(t, err)
	}

	for n := range events {
		require.NoError(t, topic.Publish(context.Background(), n))
	}
	closeBus(t, bus)

	assert.Equal(t, [3]int{events, events, events}, next)
}

func TestBlockedSubscriberDoesNotHoldUpOthers(t *testing.T) {
	const events = 500
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "quotes")
	entered, release := make(chan struct{}, events), make(chan struct{})
	stuck, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		entered <- struct{}{}
		<-release
		return nil
	}, eventbus.Queue(events))
	require.NoError(t, err)
	h, got := collect[int](events)
	_, err = topic.Subscribe(h)
	require.NoError(t, err)

	for n := range events {
		require.NoError(t, topic.Publish(context.Background(), n))
	}

	assert.Len(t, receive(t, got, events), events, "the free subscriber got everything while the other was stuck")
	// The stuck handler's goroutine may not have been scheduled yet, the
	// free one having done everything: wait until it holds its first event.
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck subscriber never started its first event")
	}
	assert.Equal(t, events-1, stuck.Stats().QueueLen, "the stuck subscriber's other events wait in its own buffer")
	close(release)
}

func TestFullBufferPolicies(t *testing.T) {
	// A subscription with a buffer of 2 whose handler is held on the first
	// event; five events are published: 0 is being handled, 1 and 2 fill the
	// buffer, 3 and 4 meet a full buffer.
	tests := []struct {
		policy        eventbus.FullPolicy
		wantHandled   []int
		wantDropped   uint64
		wantErrOnFull error
	}{
		{policy: eventbus.DropNewest, wantHandled: []int{0, 1, 2}, wantDropped: 2},
		{policy: eventbus.DropOldest, wantHandled: []int{0, 3, 4}, wantDropped: 2},
		{policy: eventbus.Reject, wantHandled: []int{0, 1, 2}, wantErrOnFull: eventbus.ErrQueueFull},
		{policy: eventbus.Block, wantHandled: []int{0, 1, 2}, wantErrOnFull: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String()+" applies when the buffer is full", func(t *testing.T) {
			bus := newBus(t)
			topic := eventbus.MustTopic[int](bus, "t")
			started := make(chan struct{}, 1)
			release := make(chan struct{})
			var handled []int
			sub, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
				handled = append(handled, ev.Payload)
				if ev.Payload == 0 {
					started <- struct{}{}
					<-release
				}
				return nil
			}, eventbus.Queue(2), eventbus.OnFull(tt.policy))
			require.NoError(t, err)
			other, gotOther := collect[int](5)
			_, err = topic.Subscribe(other)
			require.NoError(t, err)

			require.NoError(t, topic.Publish(context.Background(), 0))
			<-started
			for n := 1; n <= 4; n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				err := topic.Publish(ctx, n)
				cancel()
				if n <= 2 || tt.wantErrOnFull == nil {
					require.NoError(t, err, "event %d", n)
				} else {
					require.ErrorIs(t, err, tt.wantErrOnFull, "event %d", n)
				}
			}
			close(release)
			closeBus(t, bus)

			assert.Equal(t, tt.wantHandled, handled)
			assert.Equal(t, tt.wantDropped, sub.Stats().Dropped)
			assert.Equal(t, tt.wantDropped, bus.Stats().Dropped)
			wantOther := []int{0, 1, 2, 3, 4}
			if tt.wantErrOnFull != nil {
				wantOther = []int{0, 1, 2} // a refused event reaches no subscription
			}
			assert.Equal(t, wantOther, drain(gotOther))
		})
	}
}

func TestConcurrencyRunsHandlersInParallel(t *testing.T) {
	const n = 3
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "jobs")
	var inside sync.WaitGroup
	inside.Add(n)
	release := make(chan struct{})
	var handled atomic.Int64
	_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		if handled.Add(1) <= n {
			inside.Done()
			<-release
		}
		return nil
	}, eventbus.Concurrency(n))
	require.NoError(t, err)

	for i := range 10 {
		require.NoError(t, topic.Publish(context.Background(), i))
	}
	inside.Wait() // n handlers are inside at once, or this never returns
	close(release)
	closeBus(t, bus)

	assert.EqualValues(t, 10, handled.Load())
}

func TestUnsubscribe(t *testing.T) {
	t.Run("is idempotent", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		sub, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return nil })
		require.NoError(t, err)
		for range 3 {
			assert.NoError(t, sub.Unsubscribe())
		}
		closeBus(t, bus)
		assert.NoError(t, sub.Unsubscribe(), "after Close too")
	})

	t.Run("discards queued events and starts no delivery afterwards", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		started := make(chan struct{})
		release := make(chan struct{})
		var handled []int
		sub, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
			handled = append(handled, ev.Payload)
			if ev.Payload == 0 {
				close(started)
				<-release
			}
			return nil
		})
		require.NoError(t, err)
		for n := range 5 {
			require.NoError(t, topic.Publish(context.Background(), n))
		}
		<-started

		require.NoError(t, sub.Unsubscribe()) // returns while event 0 is being handled
		require.NoError(t, topic.Publish(context.Background(), 5))
		close(release)
		closeBus(t, bus)

		assert.Equal(t, []int{0}, handled, "the delivery under way finished; none started after")
		assert.EqualValues(t, 1, bus.Stats().NoSubscribers, "event 5 found no subscriber")
	})

	t.Run("racing with publishers lets at most the delivery under way finish", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		var starts atomic.Int64
		sub, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			starts.Add(1)
			return nil
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				_ = topic.Publish(ctx, n)
			}
		})
		for starts.Load() < 1000 {
			time.Sleep(time.Millisecond) // pacing the test's trigger, not waiting for delivery
		}

		require.NoError(t, sub.Unsubscribe())
		after := starts.Load()
		cancel()
		wg.Wait()
		closeBus(t, bus)

		assert.LessOrEqual(t, starts.Load(), after+1, "one handler call may have passed the gate before Unsubscribe closed it")
	})

	t.Run("from inside its own handler does not deadlock", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		var sub *eventbus.Subscription
		var calls atomic.Int64
		ready := make(chan struct{})
		done := make(chan struct{})
		sub, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			<-ready
			calls.Add(1)
			err := sub.Unsubscribe()
			close(done)
			return err
		})
		require.NoError(t, err)
		close(ready)
		require.NoError(t, topic.Publish(context.Background(), 1))
		require.NoError(t, topic.Publish(context.Background(), 2))
		<-done
		closeBus(t, bus)
		assert.EqualValues(t, 1, calls.Load())
	})
}

func TestSubscribeAll(t *testing.T) {
	bus := newBus(t)
	before := eventbus.MustTopic[int](bus, "numbers")
	events := make(chan eventbus.Event[any], 3)
	sub, err := eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
		events <- ev
		return nil
	})
	require.NoError(t, err)
	after := eventbus.MustTopic[string](bus, "words")

	require.NoError(t, before.Publish(context.Background(), 42))
	require.NoError(t, after.Publish(context.Background(), "hello"))

	got := receive(t, events, 2)
	assert.Equal(t, "numbers", got[0].Topic)
	assert.Equal(t, 42, got[0].Payload, "the payload keeps its type inside Event[any]")
	assert.Equal(t, "words", got[1].Topic)
	assert.Equal(t, "hello", got[1].Payload)
	assert.Equal(t, "*", sub.Topic())

	require.NoError(t, sub.Unsubscribe())
	require.NoError(t, before.Publish(context.Background(), 7))
	closeBus(t, bus)
	assert.Empty(t, drain(events))
}

func TestSubscribeAllWithSyncRunsInline(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "n")
	var seen []any
	_, err := eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
		seen = append(seen, ev.Payload)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), 1))
	require.NoError(t, topic.Publish(context.Background(), 2))

	assert.Equal(t, []any{1, 2}, seen)
}

type ctxKey struct{}

func TestHandlerContexts(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	var syncVal any
	_, err := topic.Subscribe(func(ctx context.Context, _ eventbus.Event[int]) error {
		syncVal = ctx.Value(ctxKey{})
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)
	asyncCtx := make(chan context.Context, 1)
	_, err = topic.Subscribe(func(ctx context.Context, _ eventbus.Event[int]) error {
		asyncCtx <- ctx
		return nil
	})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "publisher"))
	require.NoError(t, topic.Publish(ctx, 1))
	cancel()

	assert.Equal(t, "publisher", syncVal, "a Sync handler gets the publisher's ctx")
	hctx := receive(t, asyncCtx, 1)[0]
	assert.Nil(t, hctx.Value(ctxKey{}), "an async handler does not get the publisher's ctx")
	assert.NoError(t, hctx.Err(), "nor is it cancelled with it")
	closeBus(t, bus)
	assert.Error(t, hctx.Err(), "it lives as long as the bus")
}

func TestSubscribeRejectsANilHandler(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	_, err := topic.Subscribe(nil)
	assert.ErrorIs(t, err, eventbus.ErrNilHandler)
	_, err = eventbus.SubscribeAll(bus, nil)
	assert.ErrorIs(t, err, eventbus.ErrNilHandler)
	assert.Zero(t, bus.Stats().TotalHandlers)
}

type orchestrator struct{}

func (orchestrator) onTick(context.Context, eventbus.Event[int]) error { return nil }

func TestSubscriptionNames(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	named, err := topic.Subscribe(orchestrator{}.onTick, eventbus.Name("orchestrator"))
	require.NoError(t, err)
	unnamed, err := topic.Subscribe(orchestrator{}.onTick)
	require.NoError(t, err)

	assert.Equal(t, "orchestrator", named.Name())
	assert.Contains(t, unnamed.Name(), "orchestrator.onTick", "named after the handler function")
	assert.Contains(t, unnamed.Stats().Where, "subscribe_test.go:")
}
