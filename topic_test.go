package eventbus_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

func TestNewTopic(t *testing.T) {
	bus := newBus(t)

	t.Run("returns the same topic for the same name and type", func(t *testing.T) {
		a, err := eventbus.NewTopic[int](bus, "orders.new")
		require.NoError(t, err)
		b, err := eventbus.NewTopic[int](bus, "orders.new")
		require.NoError(t, err)
		assert.Same(t, a, b)
		assert.Equal(t, "orders.new", a.Name())
	})

	t.Run("refuses the same name with another type", func(t *testing.T) {
		_, err := eventbus.NewTopic[string](bus, "orders.new")
		assert.ErrorIs(t, err, eventbus.ErrTopicType)
		assert.ErrorContains(t, err, "int")
	})

	t.Run("MustTopic panics where NewTopic errs", func(t *testing.T) {
		assert.PanicsWithError(t, `eventbus: invalid topic name: "bad name": byte ' ' at 3 is not a letter, digit, '_', '-' or '.'`, func() {
			eventbus.MustTopic[int](bus, "bad name")
		})
	})
}

func TestTopicNames(t *testing.T) {
	bus := newBus(t)
	valid := []string{"a", "policy.updated", "health.status_changed", "A-b_C.9", strings.Repeat("x", 255)}
	for _, name := range valid {
		t.Run("accepts "+truncate(name), func(t *testing.T) {
			_, err := eventbus.NewTopic[int](bus, name)
			assert.NoError(t, err)
		})
	}
	invalid := []string{"", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "é", "a/b", "a\x00", strings.Repeat("x", 256)}
	for _, name := range invalid {
		t.Run("rejects "+truncate(name), func(t *testing.T) {
			_, err := eventbus.NewTopic[int](bus, name)
			assert.ErrorIs(t, err, eventbus.ErrInvalidTopic)
		})
	}
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return "\"" + s + "\""
}

func TestPublishEvent(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[string](bus, "t")
	events := make(chan eventbus.Event[string], 2)
	_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[string]) error {
		events <- ev
		return nil
	})
	require.NoError(t, err)

	t.Run("keeps the caller's ID, time and metadata", func(t *testing.T) {
		id, err := eventbus.ParseID("0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b")
		require.NoError(t, err)
		when := time.Date(2025, 1, 15, 10, 30, 0, 123456789, time.UTC)
		sent := eventbus.Event[string]{ID: id, Time: when, Payload: "fwd", Metadata: map[string]string{"correlation_id": "c-1"}}
		require.NoError(t, topic.PublishEvent(context.Background(), sent))
		sent.Topic = "t"
		if diff := cmp.Diff(sent, receive(t, events, 1)[0]); diff != "" {
			t.Errorf("received event differs (-sent +received):\n%s", diff)
		}
	})

	t.Run("fills in a zero ID and time", func(t *testing.T) {
		require.NoError(t, topic.PublishEvent(context.Background(), eventbus.Event[string]{Payload: "new"}))
		got := receive(t, events, 1)[0]
		assert.False(t, got.ID.IsZero())
		assert.False(t, got.Time.IsZero())
		assert.WithinDuration(t, time.Now(), got.ID.Time(), time.Second, "the ID carries the publish time")
	})

	t.Run("refuses an event of another topic", func(t *testing.T) {
		err := topic.PublishEvent(context.Background(), eventbus.Event[string]{Topic: "other"})
		assert.ErrorIs(t, err, eventbus.ErrInvalidTopic)
	})
}

func TestPublishWait(t *testing.T) {
	t.Run("returns after every subscription handled the event", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		var asyncDone, syncDone atomic.Bool
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			time.Sleep(10 * time.Millisecond) // a slow handler: PublishWait must wait for it
			asyncDone.Store(true)
			return nil
		})
		require.NoError(t, err)
		_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			syncDone.Store(true)
			return nil
		}, eventbus.Sync())
		require.NoError(t, err)

		require.NoError(t, topic.PublishWait(context.Background(), 1))
		assert.True(t, asyncDone.Load())
		assert.True(t, syncDone.Load())
	})

	t.Run("joins the errors of every failed handler", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		errA, errB := errors.New("a failed"), errors.New("b failed")
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return errA }, eventbus.Name("a"))
		require.NoError(t, err)
		_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return errB }, eventbus.Name("b"), eventbus.Sync())
		require.NoError(t, err)
		_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error { panic("c") }, eventbus.Name("c"))
		require.NoError(t, err)
		_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return nil }, eventbus.Name("ok"))
		require.NoError(t, err)

		err = topic.PublishWait(context.Background(), 1)

		assert.ErrorIs(t, err, errA)
		assert.ErrorIs(t, err, errB)
		var joined interface{ Unwrap() []error }
		require.ErrorAs(t, err, &joined)
		names := map[string]bool{}
		for _, e := range joined.Unwrap() {
			var he *eventbus.HandlerError
			require.ErrorAs(t, e, &he)
			names[he.Subscriber] = he.Panic
		}
		assert.Equal(t, map[string]bool{"a": false, "b": false, "c": true}, names)
	})

	t.Run("runs Sync handlers in parallel up to WithWorkers", func(t *testing.T) {
		// In the bubble, a handler's sleep ends only once every goroutine
		// is blocked: each handler PublishWait may start runs into the
		// sleep of the others, however slow the machine, and the peak is
		// exactly the limit.
		synctest.Test(t, func(t *testing.T) {
			bus := newBus(t, eventbus.WithWorkers(2))
			topic := eventbus.MustTopic[int](bus, "t")
			var running, peak, calls atomic.Int64
			for range 6 {
				_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
					calls.Add(1)
					n := running.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(5 * time.Millisecond)
					running.Add(-1)
					return nil
				}, eventbus.Sync())
				require.NoError(t, err)
			}
			start := time.Now()
			require.NoError(t, topic.PublishWait(context.Background(), 1))
			assert.EqualValues(t, 6, calls.Load())
			assert.EqualValues(t, 2, peak.Load(), "two handlers at once, never more")
			assert.Equal(t, 3*5*time.Millisecond, time.Since(start), "six handlers ran two at a time")
		})
	})

	t.Run("reports a drop as ErrQueueFull", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		started := make(chan struct{})
		release := make(chan struct{})
		_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
			if ev.Payload == 0 {
				close(started)
				<-release
			}
			return nil
		}, eventbus.Queue(1), eventbus.OnFull(eventbus.DropNewest))
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 0))
		<-started
		require.NoError(t, topic.Publish(context.Background(), 1))

		assert.ErrorIs(t, topic.PublishWait(context.Background(), 2), eventbus.ErrQueueFull)
		close(release)
	})

	t.Run("returns when its ctx ends", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		release := make(chan struct{})
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			<-release
			return nil
		})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, topic.PublishWait(ctx, 1), context.DeadlineExceeded)
		close(release)
	})

	t.Run("from a handler of the same subscription reports a deadlock instead of hanging", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		result := make(chan error, 1)
		var handled atomic.Int64
		_, err := topic.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
			handled.Add(1)
			if ev.Payload == 0 {
				result <- topic.PublishWait(ctx, 1)
			}
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 0))
		assert.ErrorIs(t, receive(t, result, 1)[0], eventbus.ErrDeadlock)
		closeBus(t, bus)
		assert.EqualValues(t, 2, handled.Load(), "the event is still delivered, after the handler returns")
	})
}

func TestRejectIsAllOrNothing(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "t")
	started := make(chan struct{})
	release := make(chan struct{})
	_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 0 {
			close(started)
			<-release
		}
		return nil
	}, eventbus.Queue(1), eventbus.OnFull(eventbus.Reject), eventbus.Name("strict"))
	require.NoError(t, err)
	h, got := collect[int](3)
	_, err = topic.Subscribe(h)
	require.NoError(t, err)
	require.NoError(t, topic.Publish(context.Background(), 0))
	<-started
	require.NoError(t, topic.Publish(context.Background(), 1))

	err = topic.Publish(context.Background(), 2)

	require.ErrorIs(t, err, eventbus.ErrQueueFull)
	assert.ErrorContains(t, err, "strict")
	close(release)
	closeBus(t, bus)
	assert.Equal(t, []int{0, 1}, drain(got), "the rejected event reached no subscription")
	assert.EqualValues(t, 2, bus.Stats().Published)
}

type order struct {
	Symbol string
	Qty    float64
}

func (o order) Validate() error {
	if o.Qty <= 0 {
		return errors.New("qty must be positive")
	}
	return nil
}

type pointerOrder struct{ Qty float64 }

func (o *pointerOrder) Validate() error {
	if o.Qty <= 0 {
		return errors.New("qty must be positive")
	}
	return nil
}

func TestPublishValidatesPayloads(t *testing.T) {
	t.Run("with a value receiver", func(t *testing.T) {
		testValidation(t, order{Symbol: "BTCUSDT", Qty: 1}, order{Symbol: "BTCUSDT"})
	})
	t.Run("with a pointer receiver", func(t *testing.T) {
		testValidation(t, pointerOrder{Qty: 1}, pointerOrder{})
	})
}

func testValidation[T any](t *testing.T, good, bad T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[T](bus, "orders")
	h, got := collect[T](2)
	_, err := topic.Subscribe(h)
	require.NoError(t, err)

	for _, publish := range []func(T) error{
		func(p T) error { return topic.Publish(context.Background(), p) },
		func(p T) error { return topic.PublishWait(context.Background(), p) },
		func(p T) error { return topic.PublishEvent(context.Background(), eventbus.Event[T]{Payload: p}) },
	} {
		err := publish(bad)
		var ve *eventbus.ValidationError
		require.ErrorAs(t, err, &ve)
		assert.Equal(t, "orders", ve.Topic)
		assert.ErrorContains(t, err, "qty must be positive")
	}
	require.NoError(t, topic.Publish(context.Background(), good))
	closeBus(t, bus)

	assert.Equal(t, []T{good}, drain(got), "no invalid payload was delivered")
	assert.EqualValues(t, 1, bus.Stats().Published)
}

func TestLatest(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[string](bus, "status")
	_, ok := topic.Latest()
	assert.False(t, ok, "nothing published yet")

	require.NoError(t, topic.Publish(context.Background(), "first"))
	require.NoError(t, topic.Publish(context.Background(), "second"))

	ev, ok := topic.Latest()
	require.True(t, ok)
	assert.Equal(t, "second", ev.Payload)
	assert.Equal(t, "status", ev.Topic)
	assert.False(t, ev.ID.IsZero())
}

func TestEventIDsAreUniqueAndSortedPerTopic(t *testing.T) {
	bus := newBus(t)
	a := eventbus.MustTopic[int](bus, "a")
	b := eventbus.MustTopic[int](bus, "b")
	var ids []eventbus.ID
	_, err := eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
		ids = append(ids, ev.ID)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	for n := range 1000 {
		require.NoError(t, a.Publish(context.Background(), n))
		require.NoError(t, b.Publish(context.Background(), n))
	}

	seen := make(map[eventbus.ID]bool)
	var prevA eventbus.ID
	for i, id := range ids {
		require.False(t, seen[id], "duplicate ID %s", id)
		seen[id] = true
		if i%2 == 0 {
			assert.Negative(t, bytes.Compare(prevA[:], id[:]), "IDs of one topic sort in publish order")
			prevA = id
		}
	}
}
