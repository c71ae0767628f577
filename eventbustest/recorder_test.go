package eventbustest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbustest"
)

func TestRecorderRecordsEveryEventInOrder(t *testing.T) {
	bus := newBus(t)
	tp := eventbus.MustTopic[int](bus, "ticks")
	rec := eventbustest.Record(t, tp)

	publish(t, tp, 1, 2, 3, 4)

	evs := rec.WaitN(timeout, 3)
	assert.Equal(t, []int{1, 2, 3}, []int{evs[0].Payload, evs[1].Payload, evs[2].Payload}, "WaitN returns the first n")
	closeBus(t, bus)
	assert.Equal(t, 4, rec.Len())
	assert.Equal(t, []int{1, 2, 3, 4}, rec.Payloads())
	all := rec.Events()
	require.Len(t, all, 4)
	for _, ev := range all {
		assert.Equal(t, "ticks", ev.Topic)
		assert.False(t, ev.ID.IsZero())
	}
	assert.True(t, rec.AssertPayloads([]int{1, 2, 3, 4}))
}

func TestRecorderReturnsCopies(t *testing.T) {
	bus := newBus(t)
	tp := eventbus.MustTopic[int](bus, "t")
	rec := eventbustest.Record(t, tp, eventbus.Sync())
	publish(t, tp, 1, 2)

	rec.Events()[0].Payload = 100
	rec.Payloads()[1] = 200
	rec.WaitN(timeout, 2)[0].Payload = 300
	_ = append(rec.WaitN(timeout, 1), eventbus.Event[int]{Payload: 400})

	assert.Equal(t, []int{1, 2}, rec.Payloads(), "what the recorder returns does not alias what it holds")
}

func TestRecorderWaitN(t *testing.T) {
	t.Run("wakes as events arrive, without polling", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := newBus(t)
			tp := eventbus.MustTopic[int](bus, "t")
			rec := eventbustest.Record(t, tp)
			start := time.Now()
			got := make(chan []eventbus.Event[int])
			go func() { got <- rec.WaitN(time.Hour, 2) }()
			synctest.Wait() // the waiter is blocked

			publish(t, tp, 1, 2)

			assert.Len(t, <-got, 2)
			// In the bubble time moves only when every goroutine is blocked:
			// a waiter that slept between checks would have moved it.
			assert.Zero(t, time.Since(start), "the waiter woke without sleeping")
		})
	})

	t.Run("fails the test at the deadline, listing what arrived", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := newBus(t)
			tp := eventbus.MustTopic[string](bus, "orders")
			fake := &fakeTB{TB: t}
			rec := eventbustest.Record(fake, tp)
			publish(t, tp, "first", "second")
			start := time.Now()

			got := rec.WaitN(3*time.Second, 3)

			assert.Nil(t, got)
			assert.Equal(t, 3*time.Second, time.Since(start), "it waited exactly until the deadline")
			failures := fake.Failures()
			require.Len(t, failures, 1)
			assert.Contains(t, failures[0], "Fatalf: eventbustest: waited 3s for 3 events on orders; got 2:")
			assert.Contains(t, failures[0], "first")
			assert.Contains(t, failures[0], "second")
		})
	})

	t.Run("elides the middle of a long list", func(t *testing.T) {
		bus := newBus(t)
		tp := eventbus.MustTopic[int](bus, "t")
		fake := &fakeTB{TB: t}
		rec := eventbustest.Record(fake, tp, eventbus.Sync())
		for i := range 100 {
			publish(t, tp, 1000+i)
		}

		rec.WaitN(0, 101)

		failures := fake.Failures()
		require.Len(t, failures, 1)
		assert.Contains(t, failures[0], "got 100:")
		assert.Contains(t, failures[0], "... 80 more ...")
		assert.Contains(t, failures[0], " 1009\n")
		assert.NotContains(t, failures[0], " 1010\n")
		assert.True(t, strings.HasSuffix(failures[0], " 1099"))
	})
}

func TestRecorderWaitMatch(t *testing.T) {
	isEven := func(ev eventbus.Event[int]) bool { return ev.Payload%2 == 0 }

	t.Run("returns the first match already recorded", func(t *testing.T) {
		bus := newBus(t)
		tp := eventbus.MustTopic[int](bus, "t")
		rec := eventbustest.Record(t, tp, eventbus.Sync())
		publish(t, tp, 1, 4, 6)

		assert.Equal(t, 4, rec.WaitMatch(timeout, isEven).Payload)
	})

	t.Run("waits for a match to arrive", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := newBus(t)
			tp := eventbus.MustTopic[int](bus, "t")
			rec := eventbustest.Record(t, tp)
			publish(t, tp, 1, 3)
			got := make(chan eventbus.Event[int])
			go func() { got <- rec.WaitMatch(time.Hour, isEven) }()
			synctest.Wait()

			publish(t, tp, 5, 8, 10)

			assert.Equal(t, 8, (<-got).Payload)
		})
	})

	t.Run("calls match once per event", func(t *testing.T) {
		bus := newBus(t)
		tp := eventbus.MustTopic[int](bus, "t")
		rec := eventbustest.Record(t, tp)
		calls := map[int]int{}
		publish(t, tp, 1, 3, 5, 7, 9, 11, 12)

		rec.WaitMatch(timeout, func(ev eventbus.Event[int]) bool {
			calls[ev.Payload]++
			return isEven(ev)
		})

		assert.Equal(t, map[int]int{1: 1, 3: 1, 5: 1, 7: 1, 9: 1, 11: 1, 12: 1}, calls)
	})

	t.Run("fails the test when no match arrives in time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			bus := newBus(t)
			tp := eventbus.MustTopic[int](bus, "odd")
			fake := &fakeTB{TB: t}
			rec := eventbustest.Record(fake, tp)
			publish(t, tp, 1, 3)

			got := rec.WaitMatch(time.Second, isEven)

			assert.Zero(t, got)
			failures := fake.Failures()
			require.Len(t, failures, 1)
			assert.Contains(t, failures[0], "waited 1s for an event that matches on odd; got 2:")
		})
	})
}

func TestRecorderAssertPayloads(t *testing.T) {
	t.Run("passes when the payloads are equal", func(t *testing.T) {
		bus := newBus(t)
		tp := eventbus.MustTopic[int](bus, "t")
		fake := &fakeTB{TB: t}
		rec := eventbustest.Record(fake, tp, eventbus.Sync())

		assert.True(t, rec.AssertPayloads(nil), "nothing recorded, nil wanted")
		assert.True(t, rec.AssertPayloads([]int{}), "nothing recorded, empty wanted")
		publish(t, tp, 1, 2)
		assert.True(t, rec.AssertPayloads([]int{1, 2}))
		assert.Empty(t, fake.Failures())
	})

	t.Run("fails the test with the diff when they differ", func(t *testing.T) {
		bus := newBus(t)
		tp := eventbus.MustTopic[string](bus, "words")
		fake := &fakeTB{TB: t}
		rec := eventbustest.Record(fake, tp, eventbus.Sync())
		publish(t, tp, "alpha", "beta")

		assert.False(t, rec.AssertPayloads([]string{"alpha", "gamma"}))

		failures := fake.Failures()
		require.Len(t, failures, 1)
		assert.Contains(t, failures[0], "Errorf: eventbustest: payloads recorded on words differ (-want +got):")
		// go-cmp varies its spacing on purpose; match the lines loosely.
		assert.Regexp(t, `(?m)^-.*"gamma"`, failures[0])
		assert.Regexp(t, `(?m)^\+.*"beta"`, failures[0])
	})

	t.Run("applies the cmp options", func(t *testing.T) {
		const n = 200
		bus := newBus(t)
		tp := eventbus.MustTopic[int](bus, "t")
		rec := eventbustest.Record(t, tp, eventbus.Concurrency(4)) // handled in any order
		want := make([]int, n)
		for i := range want {
			want[i] = i
			publish(t, tp, i)
		}
		rec.WaitN(timeout, n)

		rec.AssertPayloads(want, cmpopts.SortSlices(func(a, b int) bool { return a < b }))
	})
}

func TestRecordFunc(t *testing.T) {
	t.Run("fails the deliveries the handler fails", func(t *testing.T) {
		bus := newBus(t)
		tp := eventbus.MustTopic[int](bus, "t")
		errOdd := errors.New("odd")
		rec := eventbustest.RecordFunc(t, tp, func(_ context.Context, ev eventbus.Event[int]) error {
			if ev.Payload%2 != 0 {
				return errOdd
			}
			return nil
		})
		publish(t, tp, 1, 2, 3, 4)
		rec.WaitN(timeout, 4)
		closeBus(t, bus)

		assert.Equal(t, []int{1, 2, 3, 4}, rec.Payloads(), "failed deliveries are recorded too")
		st := rec.Subscription().Stats()
		assert.EqualValues(t, 2, st.Errors)
		assert.EqualValues(t, 2, st.Delivered)
	})

	t.Run("records a delivery before the handler holds it", func(t *testing.T) {
		bus := newBus(t)
		tp := eventbus.MustTopic[int](bus, "t")
		release := make(chan struct{})
		rec := eventbustest.RecordFunc(t, tp, func(context.Context, eventbus.Event[int]) error {
			<-release
			return nil
		})
		publish(t, tp, 1, 2)

		rec.WaitN(timeout, 1)
		st := rec.Subscription().Stats()
		assert.Zero(t, st.Delivered, "the first delivery is held")
		assert.Equal(t, 1, rec.Len(), "the second waits behind it")
		close(release)
		rec.WaitN(timeout, 2)
	})

	t.Run("with a nil handler is Record", func(t *testing.T) {
		bus := newBus(t)
		tp := eventbus.MustTopic[int](bus, "t")
		rec := eventbustest.RecordFunc(t, tp, nil, eventbus.Sync())
		publish(t, tp, 1)
		assert.Equal(t, []int{1}, rec.Payloads())
	})
}

func TestRecordAll(t *testing.T) {
	bus := newBus(t)
	numbers := eventbus.MustTopic[int](bus, "numbers")
	rec := eventbustest.RecordAll(t, bus)
	words := eventbus.MustTopic[string](bus, "words")

	publish(t, numbers, 1)
	publish(t, words, "two")

	evs := rec.WaitN(timeout, 2)
	assert.Equal(t, "numbers", evs[0].Topic)
	assert.Equal(t, "words", evs[1].Topic)
	rec.AssertPayloads([]any{1, "two"})
	assert.Equal(t, "*", rec.Subscription().Topic())
}

func TestRecordUnsubscribesWhenTheTestEnds(t *testing.T) {
	bus := newBus(t)
	tp := eventbus.MustTopic[int](bus, "t")
	var rec *eventbustest.Recorder[int]
	t.Run("recording", func(t *testing.T) {
		rec = eventbustest.Record(t, tp)
		require.Len(t, tp.Stats().Subscriptions, 1)
	})

	assert.Empty(t, tp.Stats().Subscriptions)
	publish(t, tp, 1)
	closeBus(t, bus)
	assert.Zero(t, rec.Len())
}

func TestRecordFailsTheTestWhenSubscribeFails(t *testing.T) {
	bus := newBus(t)
	tp := eventbus.MustTopic[int](bus, "t")
	tests := []struct {
		name   string
		record func(testing.TB)
		want   string
	}{
		{
			name:   "Record with an invalid option",
			record: func(tb testing.TB) { eventbustest.Record(tb, tp, eventbus.Queue(0)) },
			want:   "Fatalf: eventbustest: Record on t: eventbus: invalid option",
		},
		{
			name:   "RecordFunc with an invalid option",
			record: func(tb testing.TB) { eventbustest.RecordFunc(tb, tp, nil, eventbus.Concurrency(-1)) },
			want:   "Fatalf: eventbustest: Record on t: eventbus: invalid option",
		},
		{
			name:   "RecordAll with an invalid option",
			record: func(tb testing.TB) { eventbustest.RecordAll(tb, bus, eventbus.Name("")) },
			want:   "Fatalf: eventbustest: RecordAll: eventbus: invalid option",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeTB{TB: t}
			tt.record(fake)
			failures := fake.Failures()
			require.Len(t, failures, 1)
			assert.True(t, strings.HasPrefix(failures[0], tt.want), "got %q", failures[0])
		})
	}

	t.Run("Record on a closed bus", func(t *testing.T) {
		closed := newMemoryBus(t)
		closeBus(t, closed)
		fake := &fakeTB{TB: t}
		rec := eventbustest.Record(fake, eventbus.MustTopic[int](closed, "t"))
		assert.Nil(t, rec)
		assert.Equal(t, []string{"Fatalf: eventbustest: Record on t: eventbus: bus closed"}, fake.Failures())
	})
}

func TestRecorderIsSafeForConcurrentUse(t *testing.T) {
	const publishers, each = 4, 250
	bus := newBus(t)
	tp := eventbus.MustTopic[int](bus, "t")
	rec := eventbustest.Record(t, tp, eventbus.Concurrency(4))

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, tp.Publish(context.Background(), p*each+i))
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			// Readers and waiters race with the recording handlers.
			rec.WaitMatch(timeout, func(ev eventbus.Event[int]) bool { return ev.Payload == publishers*each-1 })
			for range 10 {
				_ = rec.Events()
				_ = rec.Payloads()
				_ = rec.Len()
			}
			rec.WaitN(timeout, publishers*each)
		})
	}
	wg.Wait()

	assert.Len(t, rec.WaitN(timeout, publishers*each), publishers*each)
}
