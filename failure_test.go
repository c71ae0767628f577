package eventbus_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// The failure paths of the bus: what happens when Close gives up, when a
// policy evicts an event somebody waits for, when a publish races a Replay,
// and when a dead letter cannot be stored.

func TestASyncReplayReachesTheNewHandlerBeforeAConcurrentPublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newBus(t)
		prices := eventbus.MustTopic[int](bus, "price.updated")
		require.NoError(t, prices.Publish(t.Context(), 1))

		var mu sync.Mutex
		var got []int
		published := make(chan error, 1)
		// Where a publish could overtake the replay: the subscription is in
		// the topic's list, its latest event not yet handed over.
		defer eventbus.SetTestHookReplay(func() {
			go func() { published <- prices.Publish(context.Background(), 2) }()
			synctest.Wait() // the publish has either delivered 2 or is waiting for the replay
		})()
		_, err := prices.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, ev.Payload)
			return nil
		}, eventbus.Sync(), eventbus.Replay())
		require.NoError(t, err)
		require.NoError(t, await(t, published))

		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []int{1, 2}, got, "the replayed latest event comes first")
	})
}

func TestASyncReplayHandlerMayPublishToItsOwnTopic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newBus(t)
		counts := eventbus.MustTopic[int](bus, "count.updated")
		require.NoError(t, counts.Publish(t.Context(), 1))
		var got []int
		_, err := counts.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
			got = append(got, ev.Payload)
			if ev.Payload < 3 {
				return counts.Publish(ctx, ev.Payload+1) // with the ctx it was given
			}
			return nil
		}, eventbus.Sync(), eventbus.Replay())
		require.NoError(t, err)
		assert.Equal(t, []int{1, 2, 3}, got)
	})
}

func TestDropOldestEvictingAWaitedEventEndsThePublishWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := newBus(t)
		orders := eventbus.MustTopic[int](bus, "order.placed")
		release := make(chan struct{})
		sub, err := orders.Subscribe(func(context.Context, eventbus.Event[int]) error {
			<-release
			return nil
		}, eventbus.Queue(1), eventbus.OnFull(eventbus.DropOldest))
		require.NoError(t, err)

		require.NoError(t, orders.Publish(t.Context(), 0))
		synctest.Wait() // the worker holds event 0
		waited := make(chan error, 1)
		go func() { waited <- orders.PublishWait(context.Background(), 1) }()
		synctest.Wait() // event 1 is queued, its publisher waiting
		for n := 2; sub.Stats().Dropped == 0; n++ {
			require.NoError(t, orders.Publish(t.Context(), n))
		}
		err = await(t, waited)
		require.ErrorIs(t, err, eventbus.ErrQueueFull, "the evicted event's PublishWait learns it was dropped")
		assert.ErrorContains(t, err, sub.Name())
		close(release)
	})
}

// await returns what ch yields, failing the test if nothing comes within
// a minute; in a synctest bubble that minute passes at once when every
// goroutine is blocked, so a lost wake-up fails fast instead of hanging.
func await[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatal("nothing came within a minute")
		panic("unreachable")
	}
}

// closeGivesUpCases are subscriptions whose workers take one event at a
// time (the ring's batch of 1): several workers sharing a lane, a lane per
// partition, and DropOldest, which evicts from the ring.
var closeGivesUpCases = []struct {
	name string
	opts []eventbus.SubOption
	busy int // events it takes to keep every worker busy
}{
	{"Concurrency(2)", []eventbus.SubOption{eventbus.Concurrency(2)}, 2},
	{"Concurrency(2) with PartitionBy", []eventbus.SubOption{eventbus.Concurrency(2), eventbus.PartitionBy(func(int) string { return "BTCUSDT" })}, 1},
	{"DropOldest", []eventbus.SubOption{eventbus.OnFull(eventbus.DropOldest)}, 1},
	{"one worker", nil, 1},
}

func TestCloseThatGivesUpAbandonsQueuedEventsAndEndsTheirPublishWait(t *testing.T) {
	for _, tc := range closeGivesUpCases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bus, err := eventbus.New(quiet)
				require.NoError(t, err)
				fills := eventbus.MustTopic[int](bus, "trade.filled")
				var handled sync.Map
				sub, err := fills.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
					handled.Store(ev.Payload, true)
					<-ctx.Done() // until Close gives up
					return nil
				}, tc.opts...)
				require.NoError(t, err)

				for n := range tc.busy {
					require.NoError(t, fills.Publish(t.Context(), n))
				}
				synctest.Wait() // every worker is in the handler
				const queued = 3
				for n := range queued {
					require.NoError(t, fills.Publish(t.Context(), tc.busy+n))
				}
				waited := make(chan error, 1)
				go func() { waited <- fills.PublishWait(context.Background(), 100) }()
				synctest.Wait()

				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				err = bus.Close(ctx)
				require.ErrorIs(t, err, context.DeadlineExceeded, "Close gives up when its ctx ends")

				werr := await(t, waited)
				require.ErrorIs(t, werr, eventbus.ErrClosed, "the PublishWait of an abandoned event returns")
				assert.ErrorContains(t, werr, "abandoned")
				require.NoError(t, bus.Close(context.Background()), "a later Close waits for the handlers that were cancelled")
				st := sub.Stats()
				assert.EqualValues(t, queued+1, st.Undelivered, "every queued event is counted undelivered")
				assert.EqualValues(t, tc.busy, st.Dispatched, "nothing queued started after Close gave up")
				assert.EqualValues(t, queued+1, bus.Stats().Undelivered)
				for n := tc.busy; n < tc.busy+queued; n++ {
					_, ok := handled.Load(n)
					assert.False(t, ok, "event %d was handled after Close gave up", n)
				}
			})
		})
	}
}

func TestCloseThatGivesUpReleasesAPublisherBlockedOnAFullQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus, err := eventbus.New(quiet)
		require.NoError(t, err)
		fills := eventbus.MustTopic[int](bus, "trade.filled")
		sub, err := fills.Subscribe(func(ctx context.Context, _ eventbus.Event[int]) error {
			<-ctx.Done()
			return nil
		}, eventbus.Queue(1))
		require.NoError(t, err)
		require.NoError(t, fills.Publish(t.Context(), 0))
		synctest.Wait() // the worker holds event 0
		blocked := make(chan error, 1)
		go func() {
			for n := 1; ; n++ {
				if err := fills.Publish(context.Background(), n); err != nil {
					blocked <- err
					return
				}
			}
		}()
		synctest.Wait() // the queue is full and the publisher blocks (Block)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, bus.Close(ctx), context.DeadlineExceeded)
		assert.ErrorIs(t, await(t, blocked), eventbus.ErrClosed, "the blocked publish ends with ErrClosed")
		require.NoError(t, bus.Close(context.Background()))
		assert.Positive(t, sub.Stats().Undelivered)
	})
}

// letterlessTransport is a fakeTransport whose broker refuses the first
// failed dead letters.
type letterlessTransport struct {
	*fakeTransport
	mu     sync.Mutex
	refuse int // dead letters still to refuse
}

func (l *letterlessTransport) Publish(ctx context.Context, env *eventbus.Envelope) error {
	if env.Topic == eventbus.DeadLetterTopic {
		l.mu.Lock()
		refuse := l.refuse > 0
		l.refuse--
		l.mu.Unlock()
		if refuse {
			l.record("refuse dead letter")
			return errBroker
		}
	}
	return l.fakeTransport.Publish(ctx, env)
}

func TestTransportKeepsAnEventWhoseDeadLetterCouldNotBeStored(t *testing.T) {
	f := &letterlessTransport{fakeTransport: &fakeTransport{}, refuse: 1}
	bus, err := eventbus.New(quiet, eventbus.WithTransport(f))
	require.NoError(t, err)
	fills := eventbus.MustTopic[fill](bus, "trade.filled")
	_, err = fills.Subscribe(func(context.Context, eventbus.Event[fill]) error {
		return errors.New("exchange rejected the fill")
	})
	require.NoError(t, err)
	handler, letters := collect[eventbus.DeadLetter](1)
	_, err = eventbus.DeadLetters(bus).Subscribe(handler)
	require.NoError(t, err)
	require.NoError(t, fills.Publish(t.Context(), fill{"BTCUSDT", 1}))
	letter := receive(t, letters, 1)[0]
	closeBus(t, bus)
	assert.Equal(t, 2, letter.Attempts, "the letter stored is that of the delivery after the refused one")

	want := []string{
		"publish trade.filled",
		"refuse dead letter",
		"retry trade.filled attempt 1 after 1s", // kept by the broker, not terminated
		"publish eventbus.dead_letter",
		"reject trade.filled attempt 2", // only once its dead letter is stored
	}
	var got []string
	for _, e := range f.events() {
		if e != "drain" && e != "stop" && e != "close" && !strings.HasPrefix(e, "ack eventbus.dead_letter") {
			got = append(got, e)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what the broker was asked (-want +got):\n%s", diff)
	}
	assert.EqualValues(t, 1, bus.Stats().DeadLettered)
}

func TestCloseThatGivesUpTakesBackTheRunAWorkerHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus, err := eventbus.New(quiet)
		require.NoError(t, err)
		fills := eventbus.MustTopic[int](bus, "trade.filled")
		first, release := make(chan struct{}), make(chan struct{})
		sub, err := fills.Subscribe(func(ctx context.Context, ev eventbus.Event[int]) error {
			if ev.Payload == 0 {
				<-first
				return nil
			}
			<-release // ignores its ctx
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, fills.Publish(t.Context(), 0))
		synctest.Wait() // the worker is in the handler of event 0
		for n := 1; n <= 3; n++ {
			require.NoError(t, fills.Publish(t.Context(), n))
		}
		waited := make(chan error, 1)
		go func() { waited <- fills.PublishWait(context.Background(), 4) }()
		synctest.Wait()
		close(first)
		synctest.Wait() // the worker took 1-4 as one run and is in the handler of 1

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, bus.Close(ctx), context.DeadlineExceeded)
		assert.EqualValues(t, 3, sub.Stats().Undelivered,
			"when Close returns, events 2, 3 and 4 are taken back from the run of the worker still in a handler")
		close(release)
		require.ErrorIs(t, await(t, waited), eventbus.ErrClosed, "the PublishWait of an event taken back from a run returns")
		require.NoError(t, bus.Close(context.Background()))
		st := sub.Stats()
		assert.EqualValues(t, 3, st.Undelivered)
		assert.EqualValues(t, 2, st.Dispatched)
	})
}

func TestCloseThatGivesUpAbandonsTheReplayNotYetHandled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus, err := eventbus.New(quiet)
		require.NoError(t, err)
		for _, name := range []string{"a.updated", "b.updated", "c.updated"} {
			require.NoError(t, eventbus.MustTopic[string](bus, name).Publish(t.Context(), name))
		}
		sub, err := eventbus.SubscribeAll(bus, func(ctx context.Context, _ eventbus.Event[any]) error {
			<-ctx.Done()
			return nil
		}, eventbus.Replay())
		require.NoError(t, err)
		synctest.Wait() // the worker is in the handler of the first replayed event

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, bus.Close(ctx), context.DeadlineExceeded)
		require.NoError(t, bus.Close(context.Background()))
		st := sub.Stats()
		assert.EqualValues(t, 1, st.Dispatched)
		assert.EqualValues(t, 2, st.Undelivered, "the two replayed events after the first are abandoned, not handled")
	})
}

func TestCloseThatGivesUpWhileASyncPublishRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus, err := eventbus.New(quiet)
		require.NoError(t, err)
		alerts := eventbus.MustTopic[string](bus, "health.alert")
		release := make(chan struct{})
		_, err = alerts.Subscribe(func(context.Context, eventbus.Event[string]) error {
			<-release // a Sync handler has the publisher's ctx, which Close cannot cancel
			return nil
		}, eventbus.Sync())
		require.NoError(t, err)
		published := make(chan error, 1)
		go func() { published <- alerts.Publish(context.Background(), "disk full") }()
		synctest.Wait()

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, bus.Close(ctx), context.DeadlineExceeded, "Close gives up waiting for the publish")
		close(release)
		require.NoError(t, await(t, published))
		require.NoError(t, bus.Close(context.Background()))
	})
}

func TestCloseThatGivesUpOnAnUnsubscribedHandlerStillRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus, err := eventbus.New(quiet)
		require.NoError(t, err)
		fills := eventbus.MustTopic[int](bus, "trade.filled")
		release := make(chan struct{})
		sub, err := fills.Subscribe(func(context.Context, eventbus.Event[int]) error {
			<-release // ignores its ctx
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, fills.Publish(t.Context(), 1))
		synctest.Wait()
		require.NoError(t, sub.Unsubscribe())

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, bus.Close(ctx), context.DeadlineExceeded, "Close waits for every goroutine, not only live subscriptions'")
		close(release)
		require.NoError(t, bus.Close(context.Background()))
	})
}

// closeFailingTransport is a fakeTransport whose Close fails.
type closeFailingTransport struct{ *fakeTransport }

func (closeFailingTransport) Close(context.Context) error { return errBroker }

func TestCloseReportsATransportThatFailsToClose(t *testing.T) {
	bus, err := eventbus.New(quiet, eventbus.WithTransport(closeFailingTransport{&fakeTransport{}}))
	require.NoError(t, err)
	err = bus.Close(t.Context())
	require.ErrorIs(t, err, errBroker)
	assert.ErrorContains(t, err, "closing the transport")
}

func TestCloseThatGivesUpWhileThePublishWaitsForTheBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &stallingTransport{fakeTransport: &fakeTransport{}, release: make(chan struct{})}
		bus, err := eventbus.New(quiet, eventbus.WithTransport(f))
		require.NoError(t, err)
		fills := eventbus.MustTopic[int](bus, "trade.filled")
		published := make(chan error, 1)
		go func() { published <- fills.Publish(context.Background(), 1) }()
		synctest.Wait()

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, bus.Close(ctx), context.DeadlineExceeded, "Close gives up waiting for the broker's answer")
		close(f.release)
		require.NoError(t, await(t, published))
		require.NoError(t, bus.Close(context.Background()))
	})
}

// stallingTransport is a fakeTransport whose broker answers a publish only
// once release is closed.
type stallingTransport struct {
	*fakeTransport
	release chan struct{}
}

func (s *stallingTransport) Publish(ctx context.Context, env *eventbus.Envelope) error {
	<-s.release
	return s.fakeTransport.Publish(ctx, env)
}

func TestUnsubscribeEndsARetryLoopWithoutBackoff(t *testing.T) {
	for _, tc := range []struct {
		name string
		bus  func(t *testing.T) *eventbus.Bus
	}{
		{"in memory", func(t *testing.T) *eventbus.Bus { b, err := eventbus.New(quiet); require.NoError(t, err); return b }},
		{"over a transport", func(t *testing.T) *eventbus.Bus {
			b, err := eventbus.New(quiet, eventbus.WithTransport(&fakeTransport{}))
			require.NoError(t, err)
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := tc.bus(t)
			fills := eventbus.MustTopic[int](bus, "trade.filled")
			failing := make(chan struct{}, 1)
			sub, err := fills.Subscribe(func(context.Context, eventbus.Event[int]) error {
				select {
				case failing <- struct{}{}:
				default:
				}
				return errors.New("not yet")
			}, eventbus.Retry(math.MaxInt, nil))
			require.NoError(t, err)
			require.NoError(t, fills.Publish(t.Context(), 1))
			await(t, failing)
			require.NoError(t, sub.Unsubscribe())

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			require.NoError(t, bus.Close(ctx), "the retries stop with the subscription, so Close returns")
		})
	}
}
