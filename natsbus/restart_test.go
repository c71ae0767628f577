package natsbus_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestBrokerRestart stops the broker under a durable and an ephemeral
// receiver and starts it again on the same port and store. It always
// embeds its broker, since it has to restart it.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.StartEmbedded(t)
	h := startHarness(t, srv.Connect(t), srv.Names(t))
	const topic = "trade.executed"
	durable := h.subscribe(eventbus.SubscribeOptions{Topic: topic, Name: "ledger", AckWait: time.Second})
	ephemeral := h.subscribe(eventbus.SubscribeOptions{Topic: topic})
	before := h.publish(topic, payloads(3)...)

	// The durable receiver acknowledges two events and is still working on
	// the third when the broker goes; the ephemeral one acknowledges all.
	for _, e := range before[:2] {
		d := h.next(durable)
		require.Equal(t, e.ID, d.Envelope().ID)
		require.NoError(t, d.Ack(h.ctx()))
	}
	unacked := h.next(durable)
	require.Equal(t, before[2].ID, unacked.Envelope().ID)
	for _, e := range before {
		d := h.next(ephemeral)
		require.Equal(t, e.ID, d.Envelope().ID)
		require.NoError(t, d.Ack(h.ctx()))
	}
	// Acks are plain publishes: flushed, the broker has them.
	require.NoError(t, h.nc.FlushWithContext(h.ctx()))

	srv.Shutdown(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	during := newEnvelope(topic, "during the outage")
	err := h.tr.Publish(ctx, during)
	require.Error(t, err, "Publish with the broker down")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, h.subject(topic))
	assert.ErrorContains(t, err, "RECONNECTING")

	srv.Restart(t)
	// The client queued the failed publish and sends it on reconnecting, so
	// it may be stored after all; at-least-once allows that.
	after := h.publish(topic, "after the restart")[0]

	acked := map[eventbus.ID]bool{before[0].ID: true, before[1].ID: true}
	// The receiver fetches ahead: the event published after the restart
	// may come before the unacknowledged one, which waits for AckWait.
	got := receiveUntil(h, durable, acked, after.ID, before[2].ID)
	assert.Contains(t, got, before[2].ID, "the unacknowledged event is redelivered")
	assert.Equal(t, 2, got[before[2].ID], "attempt of the unacknowledged event")
	assert.Contains(t, got, after.ID)

	for _, e := range before {
		acked[e.ID] = true
	}
	got = receiveUntil(h, ephemeral, acked, after.ID)
	assert.Contains(t, got, after.ID, "the ephemeral receiver resumes")
	for id := range got {
		assert.True(t, id == after.ID || id == during.ID, "unexpected event %s", id)
	}
}

// receiveUntil receives and acknowledges deliveries until every event of
// want has come, failing on any delivery of an event in acked or any
// delivered twice; it returns the attempt of each event received.
func receiveUntil(h *harness, r eventbus.Receiver, acked map[eventbus.ID]bool, want ...eventbus.ID) map[eventbus.ID]int {
	h.t.Helper()
	got := map[eventbus.ID]int{}
	missing := func() bool {
		for _, id := range want {
			if got[id] == 0 {
				return true
			}
		}
		return false
	}
	for missing() {
		d := h.next(r)
		id := d.Envelope().ID
		require.False(h.t, acked[id], "acknowledged event %s delivered again", id)
		require.NotContains(h.t, got, id, "event %s delivered twice", id)
		got[id] = d.Attempt()
		require.NoError(h.t, d.Ack(h.ctx()))
	}
	return got
}

// TestBusSurvivesABrokerRestart is TestBrokerRestart at the typed level:
// a durable and an ephemeral subscription, one handler still running when
// the broker stops. Nothing acknowledged comes again, nothing
// unacknowledged is lost, and Publish fails meanwhile with an error that
// wraps the cause and names the subject.
func TestBusSurvivesABrokerRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.StartEmbedded(t)
	w := worldOn(t, srv)
	producer, consumer := w.bus(), w.bus(eventbus.WithAckWait(time.Second))
	orders := eventbus.MustTopic[int](producer, "orders")

	var mu sync.Mutex
	handled := map[string]map[int]int{} // subscription: payload: handler calls
	holding, released := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(released) })
	t.Cleanup(release) // before Close, which would wait for the handler if the test failed first
	var hold sync.Once
	record := func(name string) eventbus.Handler[int] {
		handled[name] = map[int]int{}
		return func(_ context.Context, ev eventbus.Event[int]) error {
			mu.Lock()
			handled[name][ev.Payload]++
			mu.Unlock()
			if name == "ledger" && ev.Payload == 4 {
				hold.Do(func() { // the first call of 4 runs while the broker goes
					close(holding)
					<-released
				})
			}
			return nil
		}
	}
	seen := func(name string, payload int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return handled[name][payload] > 0
		}
	}
	topic := eventbus.MustTopic[int](consumer, "orders")
	_, err := topic.Subscribe(record("ledger"), eventbus.Name("ledger"))
	require.NoError(t, err)
	_, err = topic.Subscribe(record("ephemeral"))
	require.NoError(t, err)

	publish(t, orders, 1, 2, 3, 4)
	// With one event in flight at a time, the ledger holds 4 only once the
	// broker has recorded the acknowledgements of 1, 2 and 3.
	receive(t, holding, "the ledger to start handling event 4")
	require.Eventually(t, func() bool { return w.ackFloor("orders_") == 4 }, waitFor, 5*time.Millisecond,
		"the ephemeral subscription's acknowledgements reach the broker")

	srv.Shutdown(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = orders.Publish(ctx, 5)
	require.Error(t, err, "Publish with the broker down")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the cause")
	assert.ErrorContains(t, err, w.names.SubjectPrefix+".orders", "the subject")
	release() // its acknowledgement cannot reach the broker now

	srv.Restart(t)
	publish(t, orders, 6)
	require.Eventually(t, seen("ledger", 6), waitFor, 5*time.Millisecond)
	require.Eventually(t, seen("ephemeral", 6), waitFor, 5*time.Millisecond)
	w.close(consumer)

	mu.Lock()
	defer mu.Unlock()
	ledger := handled["ledger"]
	t.Logf("ledger: 4 handled %d times; the publish that failed during the outage was stored after all: %v", ledger[4], ledger[5] > 0)
	for _, n := range []int{1, 2, 3, 6} {
		assert.Equal(t, 1, ledger[n], "ledger: event %d: acknowledged ones come once", n)
	}
	assert.Contains(t, []int{1, 2}, ledger[4], "ledger: the event in flight is handled again at most once")
	assert.LessOrEqual(t, ledger[5], 1, "ledger: the publish refused during the outage")
	eph := handled["ephemeral"]
	for _, n := range []int{1, 2, 3, 4, 6} {
		assert.Equal(t, 1, eph[n], "ephemeral: event %d", n)
	}
}

// TestBusCloseWhenTheBrokerGoesDuringTheDrain closes a bus while its
// durable subscriptions have events outstanding, one each in a handler
// that works until Close gives up, and shuts the broker down while Close
// waits on it for the rest. Close must give up at its deadline and say
// so, without waiting on the lost broker for each subscription in turn,
// and leave no goroutine behind once the connection is closed. It runs
// alone (not in parallel), so that every goroutine it did not find at its
// start is one it started.
func TestBusCloseWhenTheBrokerGoesDuringTheDrain(t *testing.T) {
	before := goleak.IgnoreCurrent()
	srv := natstest.StartEmbedded(t)
	names := srv.Names(t)
	nc := srv.Connect(t)
	tr, err := natsbus.New(nc, names.Options()...)
	require.NoError(t, err)
	bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	orders := eventbus.MustTopic[int](bus, "orders")
	const subscriptions = 3
	started := make(chan string, subscriptions)
	for i := range subscriptions {
		name := fmt.Sprintf("ledger-%d", i)
		var once sync.Once
		_, err = orders.Subscribe(func(ctx context.Context, _ eventbus.Event[int]) error {
			once.Do(func() { started <- name })
			<-ctx.Done() // busy until Close gives up on the handlers
			return ctx.Err()
		}, eventbus.Name(name))
		require.NoError(t, err)
	}

	// Close's drain asks the broker how far the ledger's consumer is; a
	// subscriber on that API subject sees each question.
	monitor := srv.Connect(t)
	polls, err := monitor.SubscribeSync("$JS.API.CONSUMER.INFO." + names.Stream + ".>")
	require.NoError(t, err)
	publish(t, orders, 1, 2, 3)
	for range subscriptions {
		receive(t, started, "each handler to start on the first event")
	}

	const deadline = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	closed := make(chan error, 1)
	begun := time.Now()
	go func() { closed <- bus.Close(ctx) }()
	_, err = polls.NextMsg(waitFor)
	require.NoError(t, err, "Close asks the broker how far the consumer is")
	srv.Shutdown(t)

	err = receive(t, closed, "Close to return with the broker gone")
	took := time.Since(begun)
	require.Error(t, err, "Close returned nil with every event unhandled")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	// Waiting on the broker to end each receiver's pull would cost a
	// transport timeout per subscription.
	assert.Less(t, took, deadline+natsbus.DefaultTimeout, "Close took %v with a deadline of %v", took, deadline)
	t.Logf("Close returned after %v (deadline %v): %v", took, deadline, err)
	st := bus.Stats()
	assert.Zero(t, st.Delivered, "events handled")

	// Close gave up on the handler; a second Close waits for what is left.
	again, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	assert.NoError(t, bus.Close(again), "a second Close, once the handlers Close gave up on have returned")
	nc.Close()
	monitor.Close()
	goleak.VerifyNone(t, before)
}
