package eventbus_test

import (
	"context"
	"runtime"
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
