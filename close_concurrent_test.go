package eventbus_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// Close may be called from any goroutine, any number of times: two Close
// calls waiting for the same Sync publish both return once it ends.
//
// The test runs in a synctest bubble so that it proves the wake-up ran:
// synctest.Wait returns only once both Close calls are durably blocked,
// which with the publish still running can only be in their wait for it.
// A Close that nothing wakes would hold its ctx until the deadline, which
// the bubble's clock reaches at once.
func TestConcurrentClosesBothWaitForAPublishUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus, err := eventbus.New(quiet)
		require.NoError(t, err)
		topic := eventbus.MustTopic[int](bus, "close.concurrent")
		running, release := make(chan struct{}), make(chan struct{})
		_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			close(running)
			<-release
			return nil
		}, eventbus.Sync())
		require.NoError(t, err)
		published := make(chan error, 1)
		go func() { published <- topic.Publish(context.Background(), 1) }()
		<-running

		closed := make(chan error, 2)
		for range 2 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				closed <- bus.Close(ctx)
			}()
		}
		synctest.Wait() // both Close calls are parked
		assert.Len(t, closed, 0, "no Close returned while the publish runs")
		assert.Len(t, published, 0, "the publish is still running")

		close(release)
		for i := range 2 {
			assert.NoError(t, <-closed, "the Close to return %d", i+1)
		}
		assert.NoError(t, <-published)
		// Idempotent when the two succeeded; after a failure above, it
		// stops what they left running, so the bubble can end.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, bus.Close(ctx), "a later Close")
	})
}
