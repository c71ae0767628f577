package eventbus_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumtrader/eventbus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  eventbus.Option
	}{
		{"a zero queue size", eventbus.WithQueueSize(0)},
		{"a negative queue size", eventbus.WithQueueSize(-1)},
		{"zero workers", eventbus.WithWorkers(0)},
		{"a nil logger", eventbus.WithLogger(nil)},
		{"a nil error handler", eventbus.WithErrorHandler(nil)},
		{"a nil transport", eventbus.WithTransport(nil)},
		{"a nil codec", eventbus.WithCodec(nil)},
		{"an ack wait under 100ms", eventbus.WithAckWait(50 * time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus, err := eventbus.New(tt.opt)
			assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
			assert.Nil(t, bus)
		})
	}
}

func TestSubscribeRejectsInvalidOptions(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	nop := func(context.Context, eventbus.Event[int]) error { return nil }
	tests := []struct {
		name string
		opt  eventbus.SubOption
	}{
		{"a zero queue", eventbus.Queue(0)},
		{"zero concurrency", eventbus.Concurrency(0)},
		{"an unknown full policy", eventbus.OnFull(eventbus.FullPolicy(9))},
		{"an empty name", eventbus.Name("")},
		{"an empty group", eventbus.Group("")},
		{"a group without a transport", eventbus.Group("executors")},
		{"an ack wait under 100ms", eventbus.AckWait(50 * time.Millisecond)},
		{"an ack wait without a transport", eventbus.AckWait(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := topic.Subscribe(nop, tt.opt)
			assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
			assert.Nil(t, sub)
			_, err = eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error { return nil }, tt.opt)
			assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
		})
	}
	assert.Zero(t, bus.Stats().TotalHandlers, "no subscription is left behind by a failed Subscribe")
}

func TestCloseDrainsEveryAcceptedEventFromConcurrentPublishers(t *testing.T) {
	const publishers, perPublisher = 8, 5000
	bus := newBus(t, eventbus.WithQueueSize(64)) // small buffers: publishers block and wait
	topic := eventbus.MustTopic[int](bus, "orders")
	var received [3]atomic.Int64
	for i := range received {
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			received[i].Add(1)
			return nil
		})
		require.NoError(t, err)
	}

	var accepted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range publishers {
		wg.Go(func() {
			<-start
			for n := range perPublisher {
				err := topic.Publish(context.Background(), n)
				if err == nil {
					accepted.Add(1)
					continue
				}
				if !errors.Is(err, eventbus.ErrClosed) {
					t.Errorf("Publish: %v", err)
				}
				return
			}
		})
	}
	close(start)
	// Close while the publishers are in full flow: what was accepted must arrive.
	for accepted.Load() < publishers*perPublisher/4 {
		time.Sleep(time.Millisecond) // pacing the test's own trigger, not waiting for delivery
	}
	closeBus(t, bus)
	wg.Wait()

	require.Positive(t, accepted.Load())
	for i := range received {
		assert.Equal(t, accepted.Load(), received[i].Load(), "subscriber %d", i)
	}
	st := bus.Stats()
	assert.EqualValues(t, accepted.Load(), st.Published)
	assert.EqualValues(t, 3*accepted.Load(), st.Delivered)
	assert.Zero(t, st.QueueSize)
	assert.ErrorIs(t, topic.Publish(context.Background(), 0), eventbus.ErrClosed)
}

func TestCloseIsIdempotent(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return nil })
	require.NoError(t, err)
	require.NoError(t, topic.Publish(context.Background(), 1))

	for range 3 {
		closeBus(t, bus)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { assert.NoError(t, bus.Close(context.Background())) })
	}
	wg.Wait()
}

func TestCloseStopsIntake(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	closeBus(t, bus)

	nop := func(context.Context, eventbus.Event[int]) error { return nil }
	_, err := topic.Subscribe(nop)
	assert.ErrorIs(t, err, eventbus.ErrClosed, "Subscribe")
	_, err = eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error { return nil })
	assert.ErrorIs(t, err, eventbus.ErrClosed, "SubscribeAll")
	assert.ErrorIs(t, topic.Publish(context.Background(), 1), eventbus.ErrClosed, "Publish")
	assert.ErrorIs(t, topic.PublishWait(context.Background(), 1), eventbus.ErrClosed, "PublishWait")
	assert.ErrorIs(t, topic.PublishEvent(context.Background(), eventbus.Event[int]{}), eventbus.ErrClosed, "PublishEvent")
	same, err := eventbus.NewTopic[int](bus, "t")
	require.NoError(t, err, "looking a topic up still works after Close")
	assert.Same(t, topic, same)
}

func TestCloseGivesUpAtItsDeadline(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	started := make(chan struct{})
	release := make(chan struct{})
	var handlerCtxErr atomic.Value
	_, err := topic.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 0 {
			close(started)
			<-ctx.Done() // the handler honours its ctx
			handlerCtxErr.Store(ctx.Err())
			<-release
		}
		return nil
	})
	require.NoError(t, err)
	for n := range 10 {
		require.NoError(t, topic.Publish(context.Background(), n))
	}
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = bus.Close(ctx)

	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.EqualValues(t, 9, bus.Stats().Undelivered, "the nine events behind the stuck one are given up")
	close(release)
	closeBus(t, bus) // a second Close waits for the handler to return
	assert.Equal(t, context.Canceled, handlerCtxErr.Load(), "the handler's ctx is cancelled when Close gives up")
	assert.Zero(t, bus.Stats().QueueSize)
}

func TestCloseWaitsForPublishersBlockedOnAFullQueue(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	release := make(chan struct{})
	_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		<-release
		return nil
	}, eventbus.Queue(1))
	require.NoError(t, err)
	require.NoError(t, topic.Publish(context.Background(), 1)) // taken by the handler
	require.NoError(t, topic.Publish(context.Background(), 2)) // fills the queue
	blocked := make(chan error)
	go func() { blocked <- topic.Publish(context.Background(), 3) }()

	closed := make(chan error)
	go func() { closed <- bus.Close(context.Background()) }()

	assert.ErrorIs(t, <-blocked, eventbus.ErrClosed, "a publisher still waiting for room is turned away")
	close(release)
	require.NoError(t, <-closed)
	st := bus.Stats()
	assert.EqualValues(t, 2, st.Published)
	assert.EqualValues(t, 2, st.Delivered)
}

func TestHandlerErrorsAreReportedWithContext(t *testing.T) {
	var mu sync.Mutex
	var reported []*eventbus.HandlerError
	var logged strings.Builder
	logger := slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil))
	bus := newBus(t, eventbus.WithLogger(logger), eventbus.WithErrorHandler(func(he *eventbus.HandlerError) {
		mu.Lock()
		reported = append(reported, he)
		mu.Unlock()
	}))
	topic := eventbus.MustTopic[int](bus, "risk.check")
	boom := errors.New("boom")
	_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 1 {
			return boom
		}
		panic("kaboom")
	}, eventbus.Name("risk-guard"))
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), 1))
	require.NoError(t, topic.Publish(context.Background(), 2))
	closeBus(t, bus)

	require.Len(t, reported, 2)
	failed, panicked := reported[0], reported[1]
	assert.ErrorIs(t, failed, boom)
	assert.Equal(t, "risk.check", failed.Topic)
	assert.Equal(t, "risk-guard", failed.Subscriber)
	assert.Equal(t, 1, failed.Attempt)
	assert.False(t, failed.EventID.IsZero())
	assert.False(t, failed.Panic)
	assert.True(t, panicked.Panic)
	assert.Contains(t, panicked.Error(), "kaboom")
	assert.Contains(t, string(panicked.Stack), "bus_test.go", "the stack shows where the handler panicked")

	st := bus.Stats()
	assert.EqualValues(t, 2, st.Errors)
	assert.EqualValues(t, 1, st.Panics)
	assert.EqualValues(t, 0, st.Delivered)
	assert.Contains(t, logged.String(), "subscriber=risk-guard")
	assert.Contains(t, logged.String(), "topic=risk.check")
	assert.Contains(t, logged.String(), "event_id="+failed.EventID.String())
}

func TestStatsPerTopicAndSubscription(t *testing.T) {
	bus := newBus(t)
	orders := eventbus.MustTopic[int](bus, "orders")
	fills := eventbus.MustTopic[string](bus, "fills")
	_, err := orders.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload%2 == 1 {
			return errors.New("odd")
		}
		return nil
	}, eventbus.Name("evens"), eventbus.Queue(16))
	require.NoError(t, err)
	all, err := eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error { return nil }, eventbus.Name("audit"))
	require.NoError(t, err)
	for n := range 4 {
		require.NoError(t, orders.Publish(context.Background(), n))
	}
	require.NoError(t, fills.Publish(context.Background(), "x"))
	closeBus(t, bus)

	topics := bus.Topics()
	require.Len(t, topics, 3)
	dl := topics[0]
	assert.Equal(t, eventbus.DeadLetterTopic, dl.Name, "sorted by name")
	assert.EqualValues(t, 2, dl.Published, "each failed delivery became a dead letter")
	assert.Equal(t, "fills", topics[1].Name)
	assert.Equal(t, "string", topics[1].Type)
	o := topics[2]
	assert.Equal(t, "orders", o.Name)
	assert.EqualValues(t, 4, o.Published)
	assert.EqualValues(t, 4, o.Dispatched)
	assert.EqualValues(t, 2, o.Delivered)
	assert.EqualValues(t, 2, o.Errors)
	assert.EqualValues(t, 2, o.DeadLettered)
	require.Len(t, o.Subscriptions, 1)
	s := o.Subscriptions[0]
	assert.Equal(t, "evens", s.Name)
	assert.Equal(t, 16, s.QueueCap)
	assert.Contains(t, s.Where, "bus_test.go:")
	assert.Positive(t, s.HighWater)
	assert.LessOrEqual(t, s.HighWater, 4)

	as := all.Stats()
	assert.Equal(t, "*", as.Topic)
	assert.EqualValues(t, 7, as.Delivered, "SubscribeAll sees every topic, dead letters included")

	st := bus.Stats()
	assert.EqualValues(t, 7, st.Published)
	assert.EqualValues(t, 11, st.Dispatched)
	assert.EqualValues(t, 9, st.Delivered)
	assert.EqualValues(t, 2, st.DeadLettered)
	assert.Equal(t, 1, st.HandlerTypes)
	assert.Equal(t, 2, st.TotalHandlers)
}

func TestStatsKeepTheCountsOfUnsubscribedSubscriptions(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	sub, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return nil })
	require.NoError(t, err)
	for n := range 5 {
		require.NoError(t, topic.PublishWait(context.Background(), n))
	}
	require.NoError(t, sub.Unsubscribe())

	st := bus.Stats()
	assert.EqualValues(t, 5, st.Delivered)
	assert.Zero(t, st.TotalHandlers)
	assert.EqualValues(t, 5, topic.Stats().Delivered)
}

// syncWriter makes a strings.Builder safe for a logger used from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func TestStatsReportHandlerLatencyPercentiles(t *testing.T) {
	// In the bubble a handler's time.Sleep is its whole measured latency,
	// exactly, however loaded the machine: the clock moves only while every
	// goroutine is blocked.
	const fast, slow = 50 * time.Microsecond, 2 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		sub, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
			// One call in 16 is slow: 6% of the calls, so above the 99th
			// percentile and far below the 50th. The sampler times calls
			// 1-16 and every 256th (see SubscriptionStats); the 16th and
			// every 256th are slow ones, 7 of its 22 samples.
			if ev.Payload%16 == 15 {
				time.Sleep(slow)
			} else {
				time.Sleep(fast)
			}
			return nil
		})
		require.NoError(t, err)
		for n := range 1600 {
			require.NoError(t, topic.Publish(context.Background(), n))
		}
		closeBus(t, bus)

		// A quantile is the upper bound of its histogram bucket: at most
		// 12.5% above the true value.
		st := sub.Stats()
		assert.GreaterOrEqual(t, st.LatencyP50, fast, "the median is a fast call")
		assert.LessOrEqual(t, st.LatencyP50, fast+fast/8, "the median is a fast call")
		assert.GreaterOrEqual(t, st.LatencyP99, slow, "the 99th percentile is a slow call: the tail is seen")
		assert.LessOrEqual(t, st.LatencyP99, slow+slow/8, "the 99th percentile is a slow call: the tail is seen")
		ts := topic.Stats()
		assert.Equal(t, st.LatencyP50, ts.LatencyP50, "the topic's percentiles cover its one subscription")
		assert.Equal(t, st.LatencyP99, ts.LatencyP99)
	})
}

func TestCloseDeliversWhatHandlersPublishWhileItDrains(t *testing.T) {
	const events = 500
	bus := newBus(t)
	orders := eventbus.MustTopic[int](bus, "orders")
	fills := eventbus.MustTopic[int](bus, "fills")
	audits := eventbus.MustTopic[int](bus, "audits")
	var publishErrs atomic.Int64
	_, err := orders.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
		if err := fills.Publish(ctx, ev.Payload); err != nil { // a reaction to an accepted event
			publishErrs.Add(1)
			return err
		}
		return nil
	})
	require.NoError(t, err)
	_, err = fills.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
		return audits.Publish(ctx, ev.Payload) // and a reaction to the reaction
	}, eventbus.Queue(8))
	require.NoError(t, err)
	h, got := collect[int](events)
	_, err = audits.Subscribe(h)
	require.NoError(t, err)

	for n := range events {
		require.NoError(t, orders.Publish(context.Background(), n))
	}
	closeBus(t, bus) // most reactions happen after Close has begun

	assert.Zero(t, publishErrs.Load(), "no reaction was refused")
	assert.Len(t, drain(got), events, "every reaction of a reaction arrived")
	assert.ErrorIs(t, orders.Publish(context.Background(), 1), eventbus.ErrClosed, "outsiders are still turned away")
	st := bus.Stats()
	assert.EqualValues(t, 3*events, st.Published)
	assert.EqualValues(t, 3*events, st.Delivered)
}

func TestCountsAddSumsEachCount(t *testing.T) {
	c := eventbus.Counts{Dispatched: 1, Delivered: 2, Errors: 3, Panics: 4, Retries: 5, Dropped: 6, DeadLettered: 7, Undelivered: 8}
	c.Add(eventbus.Counts{Dispatched: 10, Delivered: 20, Errors: 30, Panics: 40, Retries: 50, Dropped: 60, DeadLettered: 70, Undelivered: 80})
	assert.Equal(t, eventbus.Counts{Dispatched: 11, Delivered: 22, Errors: 33, Panics: 44, Retries: 55, Dropped: 66, DeadLettered: 77, Undelivered: 88}, c)
}
