package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

func TestRetry(t *testing.T) {
	t.Run("runs a failing handler again until it succeeds", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		var calls atomic.Int64
		var backoffs []int
		sub, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			if calls.Add(1) < 3 {
				return errors.New("not yet")
			}
			return nil
		}, eventbus.Retry(3, func(attempt int) time.Duration {
			backoffs = append(backoffs, attempt)
			return time.Microsecond
		}))
		require.NoError(t, err)

		require.NoError(t, topic.PublishWait(context.Background(), 1))

		assert.EqualValues(t, 3, calls.Load())
		assert.Equal(t, []int{1, 2}, backoffs, "backoff is asked after each failed attempt but the last")
		st := sub.Stats()
		assert.EqualValues(t, 1, st.Dispatched)
		assert.EqualValues(t, 1, st.Delivered)
		assert.EqualValues(t, 2, st.Errors)
		assert.EqualValues(t, 2, st.Retries)
		assert.Zero(t, st.DeadLettered)
		assert.EqualValues(t, 2, bus.Stats().Retries)
	})

	t.Run("retries panics too", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		var calls atomic.Int64
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			if calls.Add(1) == 1 {
				panic("first call")
			}
			return nil
		}, eventbus.Retry(2, nil), eventbus.Sync())
		require.NoError(t, err)

		require.NoError(t, topic.Publish(context.Background(), 1), "a Sync handler is retried inline")
		assert.EqualValues(t, 2, calls.Load())
		assert.EqualValues(t, 1, bus.Stats().Panics)
	})

	t.Run("returns the last attempt's error from PublishWait", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			return errors.New("down")
		}, eventbus.Retry(4, nil))
		require.NoError(t, err)

		err = topic.PublishWait(context.Background(), 1)
		var he *eventbus.HandlerError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, 4, he.Attempt)
	})

	t.Run("stops waiting when Close gives up", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		failed := make(chan struct{}, 1)
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			failed <- struct{}{}
			return errors.New("down")
		}, eventbus.Retry(5, func(int) time.Duration { return time.Hour }))
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 1))
		<-failed

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, bus.Close(ctx), context.DeadlineExceeded)
		closeBus(t, bus) // returns: the hour-long wait was cut short
		st := bus.Stats()
		assert.EqualValues(t, 1, st.Undelivered)
		assert.Zero(t, st.DeadLettered)
	})

	t.Run("stops after Unsubscribe", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		failed := make(chan struct{}, 1)
		var calls atomic.Int64
		sub, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			calls.Add(1)
			failed <- struct{}{}
			return errors.New("down")
		}, eventbus.Retry(5, func(int) time.Duration { return time.Hour }))
		require.NoError(t, err)
		require.NoError(t, topic.Publish(context.Background(), 1))
		<-failed

		require.NoError(t, sub.Unsubscribe())
		closeBus(t, bus)
		assert.EqualValues(t, 1, calls.Load())
		assert.Zero(t, bus.Stats().DeadLettered)
	})

	t.Run("needs at least one attempt", func(t *testing.T) {
		bus := newBus(t)
		_, err := eventbus.MustTopic[int](bus, "t").Subscribe(func(context.Context, eventbus.Event[int]) error { return nil }, eventbus.Retry(0, nil))
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
	})
}

func TestExponentialBackoff(t *testing.T) {
	backoff := eventbus.ExponentialBackoff(10*time.Millisecond, 70*time.Millisecond)
	for attempt, want := range map[int]time.Duration{
		1: 10 * time.Millisecond,
		2: 20 * time.Millisecond,
		3: 40 * time.Millisecond,
		4: 70 * time.Millisecond, // capped
		9: 70 * time.Millisecond,
		// a huge attempt number must not overflow past the cap
		1000: 70 * time.Millisecond,
	} {
		for range 100 {
			d := backoff(attempt)
			require.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, want, "attempt %d", attempt)
		}
	}
	for _, bad := range [][2]time.Duration{{0, time.Second}, {-time.Second, time.Second}, {time.Second, time.Millisecond}} {
		assert.Panics(t, func() { eventbus.ExponentialBackoff(bad[0], bad[1]) }, "%v", bad)
	}
}

func TestDeadLetters(t *testing.T) {
	t.Run("are published after the last attempt", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[order](bus, "orders")
		dead := make(chan eventbus.Event[eventbus.DeadLetter], 1)
		_, err := eventbus.DeadLetters(bus).Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.DeadLetter]) error {
			dead <- ev
			return nil
		})
		require.NoError(t, err)
		sub, err := topic.Subscribe(func(context.Context, eventbus.Event[order]) error {
			return errors.New("exchange unreachable")
		}, eventbus.Name("executor"), eventbus.Retry(2, nil))
		require.NoError(t, err)

		sent := eventbus.Event[order]{Payload: order{Symbol: "BTCUSDT", Qty: 1}, Metadata: map[string]string{"correlation_id": "c-7"}}
		require.NoError(t, topic.PublishEvent(context.Background(), sent))

		dl := receive(t, dead, 1)[0]
		assert.Equal(t, eventbus.DeadLetterTopic, dl.Topic)
		got := dl.Payload
		assert.Equal(t, "orders", got.Topic)
		assert.False(t, got.EventID.IsZero())
		assert.False(t, got.Time.IsZero())
		assert.Equal(t, "executor", got.Subscriber)
		assert.Equal(t, 2, got.Attempts)
		assert.Equal(t, "exchange unreachable", got.Error)
		assert.Equal(t, order{Symbol: "BTCUSDT", Qty: 1}, got.Payload, "the original payload, typed")
		assert.Equal(t, map[string]string{"correlation_id": "c-7"}, got.Metadata)
		closeBus(t, bus)
		assert.EqualValues(t, 1, sub.Stats().DeadLettered)
		assert.EqualValues(t, 1, bus.Stats().DeadLettered)
	})

	t.Run("are not dead-lettered again when their handler fails", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		var dlCalls atomic.Int64
		_, err := eventbus.DeadLetters(bus).Subscribe(func(context.Context, eventbus.Event[eventbus.DeadLetter]) error {
			dlCalls.Add(1)
			return errors.New("the alerting service is down too")
		}, eventbus.Retry(3, nil))
		require.NoError(t, err)
		_, err = eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
			return errors.New("audit down") // fails on the dead letter too
		})
		require.NoError(t, err)
		_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return errors.New("down") })
		require.NoError(t, err)

		require.NoError(t, topic.Publish(context.Background(), 1))
		closeBus(t, bus)

		assert.EqualValues(t, 2*3, dlCalls.Load(), "each of the two dead letters retried, then given up")
		dl := eventbus.DeadLetters(bus).Stats()
		assert.EqualValues(t, 2, dl.Published, "one for the int subscriber, one for the audit's failure on the int event; none for failures on dead letters")
	})

	t.Run("produced while Close drains still reach their subscribers", func(t *testing.T) {
		const events = 200
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		var dead atomic.Int64
		_, err := eventbus.DeadLetters(bus).Subscribe(func(context.Context, eventbus.Event[eventbus.DeadLetter]) error {
			dead.Add(1)
			return nil
		})
		require.NoError(t, err)
		_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error { return errors.New("down") })
		require.NoError(t, err)
		for n := range events {
			require.NoError(t, topic.Publish(context.Background(), n))
		}
		closeBus(t, bus) // most failures happen after Close has begun

		assert.EqualValues(t, events, dead.Load())
	})
}

func TestReplay(t *testing.T) {
	t.Run("starts a late subscriber with the latest event", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[string](bus, "health")
		require.NoError(t, topic.Publish(context.Background(), "A"))
		require.NoError(t, topic.Publish(context.Background(), "B"))
		replayed, gotReplayed := collect[string](3)
		_, err := topic.Subscribe(replayed, eventbus.Replay())
		require.NoError(t, err)
		plain, gotPlain := collect[string](3)
		_, err = topic.Subscribe(plain)
		require.NoError(t, err)

		require.NoError(t, topic.Publish(context.Background(), "C"))
		closeBus(t, bus)

		assert.Equal(t, []string{"B", "C"}, drain(gotReplayed))
		assert.Equal(t, []string{"C"}, drain(gotPlain))
	})

	t.Run("replays nothing on a topic without events", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[string](bus, "health")
		h, got := collect[string](1)
		_, err := topic.Subscribe(h, eventbus.Replay())
		require.NoError(t, err)
		closeBus(t, bus)
		assert.Empty(t, drain(got))
	})

	t.Run("misses and doubles nothing while publishers run", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "seq")
		ctx, cancel := context.WithCancel(context.Background())
		var published atomic.Int64
		// The publisher reports its error here, for the test's goroutine to
		// fail on: require may not stop a goroutine other than the test's.
		publisher := make(chan error, 1)
		go func() {
			for n := 0; ctx.Err() == nil; n++ {
				if err := topic.Publish(context.Background(), n); err != nil {
					publisher <- err
					return
				}
				published.Store(int64(n))
			}
			publisher <- nil
		}()
		// reach paces the test's trigger (it does not wait for delivery),
		// and stops at once if the publisher failed.
		reach := func(n int64) {
			for published.Load() < n {
				select {
				case err := <-publisher:
					require.NoError(t, err, "Publish")
					require.FailNow(t, "the publisher stopped early")
				case <-time.After(time.Millisecond):
				}
			}
		}
		reach(1000)
		var got []int
		_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
			got = append(got, ev.Payload)
			return nil
		}, eventbus.Replay())
		require.NoError(t, err)
		reach(2000)
		cancel()
		require.NoError(t, <-publisher, "Publish")
		closeBus(t, bus)

		require.NotEmpty(t, got)
		for i := 1; i < len(got); i++ {
			require.Equal(t, got[i-1]+1, got[i], "event %d follows %d: nothing missed or doubled", got[i], got[i-1])
		}
		last, _ := topic.Latest()
		assert.Equal(t, last.Payload, got[len(got)-1])
	})

	t.Run("delivers inside Subscribe for a Sync subscription", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[string](bus, "health")
		require.NoError(t, topic.Publish(context.Background(), "DEGRADED"))
		var got []string
		_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[string]) error {
			got = append(got, ev.Payload)
			return nil
		}, eventbus.Sync(), eventbus.Replay())
		require.NoError(t, err)
		assert.Equal(t, []string{"DEGRADED"}, got)
	})

	t.Run("replays every topic's latest event to SubscribeAll", func(t *testing.T) {
		bus := newBus(t)
		require.NoError(t, eventbus.MustTopic[string](bus, "a").Publish(context.Background(), "a1"))
		require.NoError(t, eventbus.MustTopic[int](bus, "b").Publish(context.Background(), 7))
		eventbus.MustTopic[int](bus, "c") // nothing published
		var got []any
		_, err := eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
			got = append(got, ev.Payload)
			return nil
		}, eventbus.Replay())
		require.NoError(t, err)
		closeBus(t, bus)
		assert.Equal(t, []any{"a1", 7}, got)
	})
}

type quote struct {
	Symbol string
	Seq    int
}

func TestPartitionBy(t *testing.T) {
	t.Run("keeps the order of each key while keys run in parallel", func(t *testing.T) {
		const symbols, perSymbol = 16, 500
		bus := newBus(t)
		topic := eventbus.MustTopic[quote](bus, "quotes")
		var mu sync.Mutex
		next := make(map[string]int)
		var inside atomic.Int64
		together := make(chan struct{})
		var once sync.Once
		_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[quote]) error {
			if inside.Add(1) == 2 {
				once.Do(func() { close(together) })
			}
			if ev.Payload.Seq == 0 {
				select { // the first event of each key waits until two handlers overlap
				case <-together:
				case <-time.After(5 * time.Second):
					t.Error("no two partitions ever ran at the same time")
				}
			}
			mu.Lock()
			if want := next[ev.Payload.Symbol]; ev.Payload.Seq != want {
				t.Errorf("%s: got seq %d, want %d", ev.Payload.Symbol, ev.Payload.Seq, want)
			}
			next[ev.Payload.Symbol] = ev.Payload.Seq + 1
			mu.Unlock()
			inside.Add(-1)
			return nil
		}, eventbus.Concurrency(4), eventbus.PartitionBy(func(q quote) string { return q.Symbol }))
		require.NoError(t, err)

		for seq := range perSymbol {
			for s := range symbols {
				require.NoError(t, topic.Publish(context.Background(), quote{Symbol: fmt.Sprintf("SYM%d", s), Seq: seq}))
			}
		}
		closeBus(t, bus)

		for s := range symbols {
			assert.Equal(t, perSymbol, next[fmt.Sprintf("SYM%d", s)])
		}
	})

	t.Run("refuses a key function of another type", func(t *testing.T) {
		bus := newBus(t)
		_, err := eventbus.MustTopic[quote](bus, "quotes").Subscribe(func(context.Context, eventbus.Event[quote]) error { return nil },
			eventbus.Concurrency(2), eventbus.PartitionBy(func(s string) string { return s }))
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
	})

	t.Run("refuses a nil key function and Sync", func(t *testing.T) {
		bus := newBus(t)
		topic := eventbus.MustTopic[quote](bus, "quotes")
		nop := func(context.Context, eventbus.Event[quote]) error { return nil }
		_, err := topic.Subscribe(nop, eventbus.PartitionBy[quote](nil))
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
		_, err = topic.Subscribe(nop, eventbus.Sync(), eventbus.PartitionBy(func(q quote) string { return q.Symbol }))
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
		_, err = topic.Subscribe(nop, eventbus.Sync(), eventbus.Queue(5))
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
	})
}
