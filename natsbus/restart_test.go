package natsbus_test

import (
	"context"
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
	got := receiveUntil(h, durable, after.ID, acked)
	assert.Contains(t, got, before[2].ID, "the unacknowledged event is redelivered")
	assert.Equal(t, 2, got[before[2].ID], "attempt of the unacknowledged event")
	assert.Contains(t, got, after.ID)

	for _, e := range before {
		acked[e.ID] = true
	}
	got = receiveUntil(h, ephemeral, after.ID, acked)
	assert.Contains(t, got, after.ID, "the ephemeral receiver resumes")
	for id := range got {
		assert.True(t, id == after.ID || id == during.ID, "unexpected event %s", id)
	}
}

// receiveUntil receives and acknowledges deliveries until the one of last,
// failing on any delivery of an event in acked or any delivered twice; it
// returns the attempt of each event received.
func receiveUntil(h *harness, r eventbus.Receiver, last eventbus.ID, acked map[eventbus.ID]bool) map[eventbus.ID]int {
	h.t.Helper()
	got := map[eventbus.ID]int{}
	for got[last] == 0 {
		d := h.next(r)
		id := d.Envelope().ID
		require.False(h.t, acked[id], "acknowledged event %s delivered again", id)
		require.NotContains(h.t, got, id, "event %s delivered twice", id)
		got[id] = d.Attempt()
		require.NoError(h.t, d.Ack(h.ctx()))
	}
	return got
}
