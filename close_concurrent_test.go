package eventbus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// Close may be called from any goroutine, any number of times: two Close
// calls waiting for the same Sync publish both return once it ends.
func TestConcurrentClosesBothWaitForAPublishUnderWay(t *testing.T) {
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

	var closing, closed sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		closing.Add(1)
		closed.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			closing.Done()
			errs[i] = bus.Close(ctx)
		})
	}
	closing.Wait()
	// Let both Close calls reach their wait for the publish (nothing
	// outside the bus can see that they have; if one has not, it finds the
	// publish over and the test passes without testing the wake-up).
	time.Sleep(50 * time.Millisecond)
	close(release)
	closed.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "Close %d", i)
	}
	assert.NoError(t, <-published)
}
