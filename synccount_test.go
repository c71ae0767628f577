package eventbus_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

	stopWatching := watchCountsGoUp(t, bus, topic, func() []*eventbus.Subscription {
		subs := make([]*eventbus.Subscription, len(all))
		for i, c := range all {
			subs[i] = c.sub
		}
		return subs
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
	stopWatching()

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

// A SubscribeAll Sync subscription leaving while publishes run on it loses
// no Delivered and counts no call twice.
func TestSubscribeAllSyncCountsStayExactWhenItLeaves(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "sync.all")
	var calls atomic.Int64
	for trial := range 300 {
		var mine atomic.Int64
		sub, err := eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error {
			calls.Add(1)
			mine.Add(1)
			return nil
		}, eventbus.Sync())
		require.NoError(t, err)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := topic.Publish(context.Background(), trial); err != nil {
					t.Error(err)
					return
				}
			}
		})
		for mine.Load() < 20 {
			runtime.Gosched()
		}
		require.NoError(t, sub.Unsubscribe())
		close(stop)
		wg.Wait()
		st := bus.Stats()
		require.EqualValues(t, calls.Load(), st.Dispatched, "trial %d: dispatched", trial)
		require.EqualValues(t, calls.Load(), st.Delivered, "trial %d: delivered (every call succeeded)", trial)
	}
}

// The functions a failed Sync call runs on the user's behalf, the error
// handler and Retry's backoff, may panic: the panic is logged, Publish
// returns, and Close does not wait for the publish.
func TestPanicsInTheErrorHandlerAndBackoffStayInTheBus(t *testing.T) {
	var log syncWriter
	log.w = new(strings.Builder)
	bus, err := eventbus.New(
		eventbus.WithLogger(slog.New(slog.NewTextHandler(&log, nil))),
		eventbus.WithErrorHandler(func(*eventbus.HandlerError) { panic("error handler bug") }),
	)
	require.NoError(t, err)
	topic := eventbus.MustTopic[int](bus, "sync.panics")
	var calls atomic.Int64
	_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	}, eventbus.Sync(), eventbus.Retry(3, func(int) time.Duration { panic("backoff bug") }))
	require.NoError(t, err)

	for n := range 20 { // timed publishes (the first 16) and untimed ones
		calls.Store(0)
		require.NotPanics(t, func() { assert.NoError(t, topic.Publish(context.Background(), n)) })
		assert.EqualValues(t, 3, calls.Load(), "publish %d: attempts", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, bus.Close(ctx), "Close waits for no publish")

	st := topic.Stats()
	assert.EqualValues(t, 20, st.Delivered)
	assert.EqualValues(t, 40, st.Retries)
	assert.EqualValues(t, 40, st.Errors)
	assert.Contains(t, log.String(), "error handler panicked")
	assert.Contains(t, log.String(), "Retry backoff function panicked; retrying at once")
}

// panickingLog is a slog.Handler with a bug: it panics on every record.
type panickingLog struct{ slog.Handler }

func (panickingLog) Enabled(context.Context, slog.Level) bool  { return true }
func (panickingLog) Handle(context.Context, slog.Record) error { panic("logger bug") }

// A logger that panics while it reports a failed Sync call is the one user
// function the bus does not recover (there is nothing left to report the
// panic to): the panic reaches the publisher, but only once the publish is
// over, every other handler has run, and the calls are counted, so Close
// does not wait for it.
func TestALoggerPanicInASyncFailureReachesThePublisherAfterThePublish(t *testing.T) {
	bus, err := eventbus.New(eventbus.WithLogger(slog.New(panickingLog{slog.DiscardHandler})))
	require.NoError(t, err)
	topic := eventbus.MustTopic[int](bus, "sync.logger")
	var failing, fine, all atomic.Int64
	_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		failing.Add(1)
		return errors.New("failed")
	}, eventbus.Sync())
	require.NoError(t, err)
	_, err = topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		fine.Add(1)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)
	_, err = eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error {
		all.Add(1)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	const publishes = 40 // timed publishes (the first 16) and untimed ones
	for n := range publishes {
		publish := func() { _ = topic.Publish(context.Background(), n) }
		if n%4 == 3 {
			publish = func() { _ = topic.PublishWait(context.Background(), n) }
		}
		assert.PanicsWithValue(t, "logger bug", publish, "publish %d", n)
	}
	assert.EqualValues(t, publishes, failing.Load(), "calls of the failing handler")
	assert.EqualValues(t, publishes, fine.Load(), "calls of the handler after it")
	assert.EqualValues(t, publishes, all.Load(), "calls of the SubscribeAll handler")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, bus.Close(ctx), "Close waits for no publish")
	st := topic.Stats()
	assert.EqualValues(t, 2*publishes, st.Dispatched)
	assert.EqualValues(t, publishes, st.Delivered)
}

// Unsubscribe moves a subscription's counts from the live ones to the
// topic's retired totals; a Stats call at any moment of it counts them once,
// so the topic's and the bus's counts never go down.
func TestStatsNeverGoDownWhileSubscriptionsLeave(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "stats.monotonic")
	noop := func(context.Context, eventbus.Event[int]) error { return nil }
	anyNoop := func(context.Context, eventbus.Event[any]) error { return nil }

	defer watchCountsGoUp(t, bus, topic, nil)()

	for range 2000 {
		subs := make([]*eventbus.Subscription, 0, 3)
		for _, opts := range [][]eventbus.SubOption{{eventbus.Sync()}, nil} {
			sub, err := topic.Subscribe(noop, opts...)
			require.NoError(t, err)
			subs = append(subs, sub)
		}
		all, err := eventbus.SubscribeAll(bus, anyNoop, eventbus.Sync())
		require.NoError(t, err)
		subs = append(subs, all)
		for n := range 10 {
			require.NoError(t, topic.PublishWait(context.Background(), n))
		}
		for _, sub := range subs {
			require.NoError(t, sub.Unsubscribe())
		}
		if t.Failed() {
			return
		}
	}
}

// A Sync handler that unsubscribes itself and then fails: the failure is
// counted in its topic's totals, though Unsubscribe has already moved the
// subscription's counts there.
func TestASyncCallThatFailsAfterItsSubscriptionLeftIsCounted(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "sync.late")
	var sub *eventbus.Subscription
	sub, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		assert.NoError(t, sub.Unsubscribe())
		panic("refused")
	}, eventbus.Sync(), eventbus.Retry(3, nil))
	require.NoError(t, err)
	for n := range 20 {
		require.NoError(t, topic.Publish(context.Background(), n))
	}
	st := topic.Stats()
	// One call: the first; Unsubscribe stops the retries.
	assert.EqualValues(t, 1, st.Dispatched)
	assert.EqualValues(t, 0, st.Delivered)
	assert.EqualValues(t, 1, st.Errors)
	assert.EqualValues(t, 1, st.Panics)
}

// A publish runs the Sync handlers of the snapshot of subscriptions it
// took. While one publish is held up in a handler, others come and go: the held publish must count its calls for the subscriptions
// it ran, not for those that came later, and not for one that left before
// its handler was reached.
func TestAHeldSyncPublishCountsForTheSubscriptionsItRan(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "sync.held")
	entered, release := make(chan struct{}), make(chan struct{})
	var aCalls, bCalls, cCalls atomic.Int64
	a, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		if aCalls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)
	b, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		bCalls.Add(1)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	held := make(chan error)
	go func() { held <- topic.Publish(context.Background(), 1) }()
	<-entered // the first publish is in a's handler; b's call is still to come

	c, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		cCalls.Add(1)
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)
	require.NoError(t, b.Unsubscribe()) // before the held publish reaches it
	require.NoError(t, topic.Publish(context.Background(), 2))

	assert.EqualValues(t, 1, a.Stats().Dispatched, "a: the second publish; the first is still running")
	assert.EqualValues(t, 1, c.Stats().Dispatched, "c: the second publish")
	assert.EqualValues(t, 2, topic.Stats().Dispatched)

	close(release)
	require.NoError(t, <-held)
	assert.EqualValues(t, 2, aCalls.Load())
	assert.EqualValues(t, 0, bCalls.Load(), "b left before the held publish reached it")
	assert.EqualValues(t, 1, cCalls.Load(), "c came after the held publish began")
	for name, want := range map[*eventbus.Subscription]uint64{a: 2, c: 1} {
		st := name.Stats()
		assert.Equal(t, want, st.Dispatched, st.Where)
		assert.Equal(t, want, st.Delivered, st.Where)
	}
	ts := topic.Stats()
	assert.EqualValues(t, 3, ts.Dispatched, "a twice, c once; b never")
	assert.EqualValues(t, 3, ts.Delivered)
}

// Subscriptions come and go while publishers run, some with PublishWait,
// handlers fail, panic, hold their publish for a while or unsubscribe from
// inside, so publishes still run on old snapshots of the topic's Sync
// subscriptions, and calls finish after their subscription left. No
// count may go down on the way, and at the end every live subscription and
// the topic (the departed included) must count exactly the calls made.
func TestSyncCountsStayExactWhileSubscriptionsComeAndGo(t *testing.T) {
	for trial := range 2 {
		syncChurn(t, uint64(trial))
	}
}

type churned struct {
	sub           atomic.Pointer[eventbus.Subscription]
	calls, failed atomic.Int64
	left          atomic.Bool
}

func syncChurn(t *testing.T, seed uint64) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "sync.churn")
	var mu sync.Mutex
	var all []*churned
	var totalCalls, totalFailed atomic.Int64
	subscribe := func(kind int, opts ...eventbus.SubOption) error {
		c := &churned{}
		s, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
			n := c.calls.Add(1)
			totalCalls.Add(1)
			switch {
			case kind == 5 && n%3 == 0:
				time.Sleep(time.Millisecond) // holds its publish while others run
			case kind == 4 && n == 7:
				if s := c.sub.Load(); s != nil && !c.left.Swap(true) {
					assert.NoError(t, s.Unsubscribe()) // from inside its own handler
				}
			case kind == 1 && ev.Payload%5 == 0:
				c.failed.Add(1)
				totalFailed.Add(1)
				return errors.New("refused")
			case kind == 2 && ev.Payload%7 == 0:
				c.failed.Add(1)
				totalFailed.Add(1)
				panic("boom")
			}
			return nil
		}, append([]eventbus.SubOption{eventbus.Sync()}, opts...)...)
		if err != nil {
			return err
		}
		c.sub.Store(s)
		mu.Lock()
		all = append(all, c)
		mu.Unlock()
		return nil
	}
	for kind := range 6 {
		require.NoError(t, subscribe(kind))
	}

	stopWatching := watchCountsGoUp(t, bus, topic, func() []*eventbus.Subscription {
		mu.Lock()
		defer mu.Unlock()
		subs := make([]*eventbus.Subscription, len(all))
		for i, c := range all {
			subs[i] = c.sub.Load()
		}
		return subs
	})

	var wg sync.WaitGroup
	for p := range 3 {
		wg.Go(func() {
			for n := range 400 {
				var err error
				if n%4 == 0 {
					var he *eventbus.HandlerError
					if err = topic.PublishWait(context.Background(), p*1000+n); errors.As(err, &he) {
						err = nil // a handler failed on purpose
					}
				} else {
					err = topic.Publish(context.Background(), p*1000+n)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		r := rand.New(rand.NewPCG(seed, 1))
		for i := range 150 {
			var opts []eventbus.SubOption
			if i%3 == 0 {
				opts = append(opts, eventbus.Replay())
			}
			if err := subscribe(r.IntN(6), opts...); err != nil {
				t.Error(err)
				return
			}
			if r.IntN(2) == 0 {
				mu.Lock()
				victim := all[r.IntN(len(all))]
				mu.Unlock()
				if !victim.left.Swap(true) {
					assert.NoError(t, victim.sub.Load().Unsubscribe())
				}
			}
		}
	})
	wg.Wait()
	stopWatching()

	for _, c := range all {
		if c.left.Load() {
			continue // its counts are in the topic's
		}
		st := c.sub.Load().Stats()
		assert.EqualValues(t, c.calls.Load(), st.Dispatched, "%s dispatched", st.Where)
		assert.EqualValues(t, c.calls.Load()-c.failed.Load(), st.Delivered, "%s delivered", st.Where)
	}
	ts := topic.Stats()
	assert.EqualValues(t, totalCalls.Load(), ts.Dispatched, "topic dispatched, departed subscriptions included")
	assert.EqualValues(t, totalCalls.Load()-totalFailed.Load(), ts.Delivered, "topic delivered")
}

// watchCountsGoUp reads, over and over until the returned stop is called,
// the Stats of the topic, of the bus and of every subscription subs returns
// (subs may be nil), and fails t if a Dispatched or Delivered ever goes
// down.
func watchCountsGoUp(t *testing.T, bus *eventbus.Bus, topic *eventbus.Topic[int], subs func() []*eventbus.Subscription) (stop func()) {
	done := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() {
		lastTopic, lastBus := topic.Stats(), bus.Stats()
		last := map[*eventbus.Subscription]eventbus.SubscriptionStats{}
		for {
			select {
			case <-done:
				return
			default:
			}
			ts, bs := topic.Stats(), bus.Stats()
			if ts.Dispatched < lastTopic.Dispatched || ts.Delivered < lastTopic.Delivered ||
				bs.Dispatched < lastBus.Dispatched || bs.Delivered < lastBus.Delivered {
				t.Errorf("counts went down: topic %d/%d to %d/%d, bus %d/%d to %d/%d",
					lastTopic.Dispatched, lastTopic.Delivered, ts.Dispatched, ts.Delivered,
					lastBus.Dispatched, lastBus.Delivered, bs.Dispatched, bs.Delivered)
				return
			}
			lastTopic, lastBus = ts, bs
			if subs == nil {
				continue
			}
			for _, s := range subs() {
				st, l := s.Stats(), last[s]
				if st.Dispatched < l.Dispatched || st.Delivered < l.Delivered {
					t.Errorf("%s: counts went down from %d/%d to %d/%d", st.Where, l.Dispatched, l.Delivered, st.Dispatched, st.Delivered)
					return
				}
				last[s] = st
			}
		}
	})
	return func() {
		close(done)
		reader.Wait()
	}
}

// A Sync call that returns while Unsubscribe is moving its subscription's
// counts into the topic's totals counts once: Stats read at that moment
// and afterwards both see each call once (the call must not be in the
// totals and in the subscription still retiring at the same time).
func TestASyncCallEndingWhileItsSubscriptionRetiresCountsOnce(t *testing.T) {
	bus := newBus(t)
	topic := eventbus.MustTopic[int](bus, "sync.retiring")
	entered, release := make(chan struct{}), make(chan struct{})
	sub, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 99 {
			close(entered)
			<-release
		}
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, topic.Publish(t.Context(), i))
	}
	held := make(chan error, 1)
	go func() { held <- topic.Publish(context.Background(), 99) }()
	<-entered
	var during eventbus.TopicStats
	defer eventbus.SetTestHookRetire(func() {
		close(release)
		require.NoError(t, <-held) // the held call returns and counts itself
		during = topic.Stats()
	})()
	require.NoError(t, sub.Unsubscribe())
	after := topic.Stats()
	assert.EqualValues(t, 11, during.Dispatched, "calls counted while the subscription retires")
	assert.EqualValues(t, 11, during.Delivered)
	assert.EqualValues(t, 11, after.Dispatched, "calls counted once it has retired")
	assert.EqualValues(t, 11, sub.Stats().Dispatched, "the subscription's own count")
}
