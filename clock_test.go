package eventbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

func TestWithClockStampsEventsThatHaveNoTime(t *testing.T) {
	at := time.Date(2026, 12, 4, 15, 4, 5, 0, time.FixedZone("CET", 3600))
	bus := newBus(t, eventbus.WithClock(func() time.Time { return at }))
	prices := eventbus.MustTopic[int](bus, "price.updated")
	var got []eventbus.Event[int]
	_, err := prices.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
		got = append(got, ev)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	require.NoError(t, prices.Publish(t.Context(), 1))
	kept := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, prices.PublishEvent(t.Context(), eventbus.Event[int]{Payload: 2, Time: kept}))

	require.Len(t, got, 2)
	assert.Equal(t, at.UTC(), got[0].Time, "the bus's clock, in UTC")
	assert.Equal(t, time.UTC, got[0].Time.Location())
	assert.Equal(t, at.UTC().Truncate(time.Millisecond), got[0].ID.Time(), "the ID's time prefix comes from the same clock")
	assert.Equal(t, kept, got[1].Time, "an event's own time is kept")
}

func TestWithClockRejectsNil(t *testing.T) {
	_, err := eventbus.New(eventbus.WithClock(nil))
	assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
}

func TestEventTimeFollowsTheWallClockByDefault(t *testing.T) {
	before, stamped, after := stampOne(t, newBus(t))
	assert.Equal(t, time.UTC, stamped.Location())
	// The default clock extrapolates from a wall-clock reading at most
	// 100 ms old (see WithClock).
	assert.WithinRange(t, stamped, before.Add(-100*time.Millisecond), after.Add(100*time.Millisecond))
}

func TestWithClockTimeNowStampsTheExactWallClock(t *testing.T) {
	before, stamped, after := stampOne(t, newBus(t, eventbus.WithClock(time.Now)))
	assert.False(t, stamped.Before(before.Truncate(0)), "not before the publish began")
	assert.False(t, stamped.After(after.Truncate(0)), "not after it returned")
}

// stampOne publishes an event on bus and returns the time it was stamped
// with, and the wall clock just before and just after the publish.
func stampOne(t *testing.T, bus *eventbus.Bus) (before, stamped, after time.Time) {
	t.Helper()
	prices := eventbus.MustTopic[int](bus, "price.updated")
	before = time.Now()
	require.NoError(t, prices.Publish(t.Context(), 1))
	after = time.Now()
	ev, ok := prices.Latest()
	require.True(t, ok)
	return before, ev.Time, after
}

func TestWithClockStampsEventsOverATransportToo(t *testing.T) {
	at := time.Date(2026, 12, 4, 15, 4, 5, 0, time.UTC)
	f := &fakeTransport{}
	bus := newFakeBus(t, f, eventbus.WithClock(func() time.Time { return at }))
	require.NoError(t, eventbus.MustTopic[fill](bus, "trade.filled").Publish(t.Context(), fill{"BTCUSDT", 1}))
	require.Len(t, f.published, 1)
	assert.Equal(t, at, f.published[0].Time)
}
