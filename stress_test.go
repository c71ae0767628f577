package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

type msg struct {
	Pub, Seq int
}

// orderCheck verifies that, per publisher, a subscription sees consecutive
// sequence numbers: nothing missed, doubled or reordered.
type orderCheck struct {
	mu    sync.Mutex
	name  string
	next  map[int]int // publisher -> next expected seq; absent before the first
	count int
	err   error
}

func newOrderCheck(name string) *orderCheck {
	return &orderCheck{name: name, next: map[int]int{}}
}

func (c *orderCheck) see(m msg, fromStart bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	want, ok := c.next[m.Pub]
	if !ok && fromStart {
		want, ok = 0, true
	}
	if ok && m.Seq != want && c.err == nil {
		c.err = fmt.Errorf("%s: publisher %d: got seq %d, want %d", c.name, m.Pub, m.Seq, want)
	}
	c.next[m.Pub] = m.Seq + 1
	c.count++
}

func TestStressPublishSubscribeUnsubscribe(t *testing.T) {
	run := 3 * time.Second
	if testing.Short() {
		run = 300 * time.Millisecond
	}
	const publishers = 4
	bus := newBus(t, eventbus.WithQueueSize(256))
	topic := eventbus.MustTopic[msg](bus, "stress")
	other := eventbus.MustTopic[int](bus, "noise")

	stable := map[string][]eventbus.SubOption{
		"async":        nil,
		"small-buffer": {eventbus.Queue(8)},
		"sync":         {eventbus.Sync()},
		"partitioned":  {eventbus.Concurrency(3), eventbus.PartitionBy(func(m msg) string { return fmt.Sprint(m.Pub) })},
	}
	var checks []*orderCheck
	for name, opts := range stable {
		c := newOrderCheck(name)
		checks = append(checks, c)
		_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[msg]) error {
			c.see(ev.Payload, true)
			return nil
		}, opts...)
		require.NoError(t, err)
	}
	all := newOrderCheck("subscribe-all")
	checks = append(checks, all)
	_, err := eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
		if m, ok := ev.Payload.(msg); ok {
			all.see(m, true)
		}
		return nil
	})
	require.NoError(t, err)

	ctx, stop := context.WithTimeout(context.Background(), run)
	defer stop()
	var wg sync.WaitGroup
	published := make([]int, publishers)
	for p := range publishers {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil; seq++ {
				if err := topic.Publish(context.Background(), msg{Pub: p, Seq: seq}); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
				published[p] = seq + 1
				_ = other.Publish(context.Background(), seq)
			}
		})
	}
	// Churn: subscriptions come and go while the publishers run; each checks
	// that what it sees while subscribed is consecutive. A churner stops at
	// its first error, which the test's goroutine then fails on (require
	// may not stop another goroutine).
	var churned atomic.Int64
	churnErrs := make([]error, 2)
	for g := range churnErrs {
		wg.Go(func() {
			churnErrs[g] = func() error {
				rng := rand.New(rand.NewPCG(uint64(g), 7))
				for ctx.Err() == nil {
					c := newOrderCheck(fmt.Sprintf("churn-%d", g))
					opts := [][]eventbus.SubOption{nil, {eventbus.Sync()}, {eventbus.Queue(4)}, {eventbus.Replay()}}[rng.IntN(4)]
					sub, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[msg]) error {
						c.see(ev.Payload, false)
						return nil
					}, opts...)
					if err != nil {
						return fmt.Errorf("subscribing: %w", err)
					}
					time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond) // let it live a little
					if err := sub.Unsubscribe(); err != nil {
						return fmt.Errorf("unsubscribing: %w", err)
					}
					c.mu.Lock()
					err = c.err
					c.mu.Unlock()
					if err != nil {
						return err
					}
					churned.Add(1)
				}
				return nil
			}()
		})
	}
	wg.Wait()
	closeBus(t, bus)
	for g, err := range churnErrs {
		require.NoError(t, err, "churner %d", g)
	}

	total := 0
	for _, n := range published {
		total += n
	}
	require.Positive(t, total)
	for _, c := range checks {
		require.NoError(t, c.err)
		assert.Equal(t, total, c.count, "%s received every event exactly once", c.name)
		for p, n := range published {
			assert.Equal(t, n, c.next[p], "%s: publisher %d", c.name, p)
		}
	}
	assert.Positive(t, churned.Load())
	t.Logf("%d events from %d publishers, %d subscriptions came and went", total, publishers, churned.Load())
}

func TestFaultInjectionDeliveredPlusDeadLetteredEqualsPublished(t *testing.T) {
	const events, subs = 3000, 4
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "faulty")
	var deadLetters atomic.Int64
	_, err := eventbus.DeadLetters(bus).Subscribe(func(context.Context, eventbus.Event[eventbus.DeadLetter]) error {
		deadLetters.Add(1)
		return nil
	})
	require.NoError(t, err)
	var all []*eventbus.Subscription
	for i := range subs {
		rng := rand.New(rand.NewPCG(42, uint64(i))) // a fixed seed: the same faults every run
		var mu sync.Mutex
		opts := []eventbus.SubOption{eventbus.Retry(3, nil), eventbus.Name(fmt.Sprintf("flaky-%d", i))}
		if i == 3 {
			opts = append(opts, eventbus.Concurrency(4))
		}
		sub, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			mu.Lock()
			r := rng.Float64()
			mu.Unlock()
			switch {
			case r < 0.25:
				return errors.New("injected failure")
			case r < 0.35:
				panic("injected panic")
			}
			return nil
		}, opts...)
		require.NoError(t, err)
		all = append(all, sub)
	}

	for n := range events {
		require.NoError(t, topic.Publish(context.Background(), n))
	}
	closeBus(t, bus)

	var dead uint64
	for _, sub := range all {
		st := sub.Stats()
		assert.Equal(t, uint64(events), st.Delivered+st.DeadLettered, "%s: delivered + dead-lettered", st.Name)
		assert.Equal(t, st.Errors, st.Retries+st.DeadLettered, "%s: every failed attempt was retried or was the last", st.Name)
		assert.Positive(t, st.DeadLettered, "%s: the seed produces some dead letters", st.Name)
		assert.Positive(t, st.Panics, st.Name)
		dead += st.DeadLettered
	}
	assert.EqualValues(t, dead, deadLetters.Load(), "every dead letter reached the dead-letter subscriber")
	assert.Equal(t, dead, bus.Stats().DeadLettered)
}
