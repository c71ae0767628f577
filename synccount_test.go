package eventbus_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// Sync calls are counted once per publish, under the topic's lock, rather
// than with an atomic add per handler. The counts must still be exact and
// never go down, while publishers run concurrently, handlers fail and
// panic, and subscriptions leave in the middle of it, some from inside their
// own handler.
func TestSyncCountsAreExactWhileSubscriptionsLeave(t *testing.T) {
	const publishers, events, subs = 4, 2000, 12
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "sync.counts")

	type counted struct {
		sub           *eventbus.Subscription
		calls, failed atomic.Int64
	}
	all := make([]*counted, subs)
	for i := range all {
		c := &counted{}
		all[i] = c
		sub, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
			n := c.calls.Add(1)
			switch {
			case i%4 == 1 && ev.Payload%7 == 0:
				c.failed.Add(1)
				return errors.New("refused")
			case i%4 == 2 && ev.Payload%11 == 0:
				c.failed.Add(1)
				panic("boom")
			case i%4 == 3 && n == 300:
				assert.NoError(t, c.sub.Unsubscribe()) // leaves from inside its own handler
			}
			return nil
		}, eventbus.Sync())
		require.NoError(t, err)
		c.sub = sub
	}
	var anyCalls atomic.Int64
	_, err := eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error {
		anyCalls.Add(1)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	// A reader checks that no live subscription's counts ever go down.
	stop := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() {
		last := make([]eventbus.SubscriptionStats, subs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i, c := range all {
				st := c.sub.Stats()
				if st.Dispatched < last[i].Dispatched || st.Delivered < last[i].Delivered {
					t.Errorf("subscription %d: counts went down from %d/%d to %d/%d",
						i, last[i].Dispatched, last[i].Delivered, st.Dispatched, st.Delivered)
					return
				}
				last[i] = st
			}
		}
	})

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for n := range events {
				if err := topic.Publish(context.Background(), p*events+n); err != nil {
					t.Error(err)
					return
				}
				if p == 0 && n == events/2 {
					assert.NoError(t, all[0].sub.Unsubscribe()) // leaves while the others publish
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	reader.Wait()

	var calls, failed int64
	for i, c := range all {
		calls += c.calls.Load()
		failed += c.failed.Load()
		if i == 0 || i%4 == 3 {
			continue // unsubscribed: its counts are in the topic's
		}
		st := c.sub.Stats()
		assert.EqualValues(t, c.calls.Load(), st.Dispatched, "subscription %d dispatched", i)
		assert.EqualValues(t, c.calls.Load()-c.failed.Load(), st.Delivered, "subscription %d delivered", i)
	}
	ts := topic.Stats()
	assert.EqualValues(t, calls, ts.Dispatched, "topic dispatched, unsubscribed subscriptions included")
	assert.EqualValues(t, calls-failed, ts.Delivered, "topic delivered")
	bs := bus.Stats()
	assert.EqualValues(t, bs.Published, anyCalls.Load(), "SubscribeAll calls (the dead letters included)")
	assert.EqualValues(t, calls+anyCalls.Load(), bs.Dispatched, "bus dispatched, SubscribeAll included")
	assert.EqualValues(t, calls-failed+anyCalls.Load(), bs.Delivered, "bus delivered")
}
