package natsbus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	holding, release := make(chan struct{}), make(chan struct{})
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
					<-release
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
	<-holding
	require.Eventually(t, func() bool { return w.ackFloor("orders_") == 4 }, waitFor, 5*time.Millisecond,
		"the ephemeral subscription's acknowledgements reach the broker")

	srv.Shutdown(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = orders.Publish(ctx, 5)
	require.Error(t, err, "Publish with the broker down")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the cause")
	assert.ErrorContains(t, err, w.names.SubjectPrefix+".orders", "the subject")
	close(release) // its acknowledgement cannot reach the broker now

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
