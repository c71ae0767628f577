package natstest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestStreamsComeAndGoOnManyConnections creates and deletes file streams
// from several connections at once, as parallel tests do. On a server
// before 2.10 without the anchor stream, some of these creations fail with
// "error creating store for stream" (seen on Debian's nats-server 2.9.10:
// 13 of 800); every one must succeed.
func TestStreamsComeAndGoOnManyConnections(t *testing.T) {
	srv := natstest.Start(t)
	const workers, rounds = 4, 100
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := srv.Names(t).Stream
	var wg sync.WaitGroup
	errs := make([][]error, workers)
	for w := range workers {
		js, err := jetstream.New(srv.Connect(t))
		require.NoError(t, err)
		wg.Go(func() {
			for i := range rounds {
				name := fmt.Sprintf("%s_%d_%d", prefix, w, i)
				_, err := js.CreateStream(ctx, jetstream.StreamConfig{
					Name:     name,
					Subjects: []string{"natstest." + name},
					Storage:  jetstream.FileStorage,
				})
				if err != nil {
					errs[w] = append(errs[w], fmt.Errorf("create %s: %w", name, err))
					continue
				}
				if err := js.DeleteStream(ctx, name); err != nil {
					errs[w] = append(errs[w], fmt.Errorf("delete %s: %w", name, err))
				}
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		assert.Empty(t, e)
	}
}
