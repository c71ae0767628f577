package eventbus_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestAMillionEventsLeaveTheHeapWhereItWas(t *testing.T) {
	events := 1_000_000
	if testing.Short() {
		events = 100_000
	}
	bus := newBus(t, eventbus.WithQueueSize(1024))
	topic := eventbus.MustTopic[tick](bus, "ticks")
	wait := subscribeCounting(t, topic, 4)
	for n := range 1000 { // warm up: every buffer and worker exists
		require.NoError(t, topic.Publish(context.Background(), tick{Seq: uint64(n)}))
	}
	wait(1000)
	before := heapAfterGC()

	for n := range events {
		require.NoError(t, topic.Publish(context.Background(), tick{Seq: uint64(n)}))
	}
	wait(int64(1000 + events))
	after := heapAfterGC()

	// The buffers are allocated once, at Subscribe; a million events may
	// not grow the heap by more than a little bookkeeping.
	assert.Less(t, int64(after)-int64(before), int64(256<<10), "heap grew from %d to %d bytes", before, after)
	for _, s := range topic.Stats().Subscriptions {
		assert.LessOrEqual(t, s.HighWater, 1024, "a buffer never holds more than its queue size")
	}
}

// TestSubscribeAllBoxesEachEventOnce publishes to a topic that has both an
// asynchronous and a Sync SubscribeAll subscription: the payload, too large
// for an interface word, is boxed into Event[any] once per event for both.
func TestSubscribeAllBoxesEachEventOnce(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("counts allocations; coverage and the race detector add their own")
	}
	bus := newBus(t, eventbus.WithQueueSize(4096))
	topic := eventbus.MustTopic[tick](bus, "ticks")
	var async, sync atomic.Int64
	_, err := eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error {
		async.Add(1)
		return nil
	})
	require.NoError(t, err)
	_, err = eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error {
		sync.Add(1)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)
	require.NoError(t, topic.Publish(context.Background(), tick{})) // warm up

	allocs := testing.AllocsPerRun(1000, func() {
		if err := topic.Publish(context.Background(), tick{Seq: 1}); err != nil {
			t.Fatal(err)
		}
	})
	assert.Equal(t, 1.0, allocs, "allocations per publish")
	closeBus(t, bus)
	assert.Equal(t, sync.Load(), async.Load(), "both subscriptions got every event")
}
