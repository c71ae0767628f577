package natsbus_test

import (
	"testing"
	"time"

	"github.com/quantumtrader/eventbus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDelivery(t *testing.T) {
	t.Parallel()

	t.Run("Retry redelivers after the delay as attempt 2", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		e := h.publish("trade.executed", "{}")[0]
		d := h.next(r)
		require.Equal(t, 1, d.Attempt())
		const delay = 300 * time.Millisecond
		start := time.Now()
		require.NoError(t, d.Retry(h.ctx(), delay))

		d = h.next(r)
		assert.GreaterOrEqual(t, time.Since(start), delay, "redelivered before the delay")
		assert.Equal(t, e.ID, d.Envelope().ID)
		assert.Equal(t, 2, d.Attempt())
		require.NoError(t, d.Retry(h.ctx(), 0), "no delay")
		d = h.next(r)
		assert.Equal(t, 3, d.Attempt())
		require.NoError(t, d.Ack(h.ctx()))
	})

	t.Run("Reject is never redelivered", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger"})
		envs := h.publish("trade.executed", payloads(2)...)
		d := h.next(r)
		require.Equal(t, envs[0].ID, d.Envelope().ID)
		require.NoError(t, d.Reject(h.ctx()))

		d = h.next(r)
		assert.Equal(t, envs[1].ID, d.Envelope().ID, "a nak would bring the rejected event back first")
		require.NoError(t, d.Ack(h.ctx()))
		assert.Zero(t, h.consumer().NumAckPending, "the rejected event is no longer pending")
	})

	t.Run("InProgress holds off redelivery past AckWait", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		const ackWait = time.Second
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", MaxInFlight: 2, AckWait: ackWait})
		first := h.publish("trade.executed", "slow")[0]
		d := h.next(r)
		require.Equal(t, first.ID, d.Envelope().ID)

		// A handler busy for twice AckWait, reporting progress.
		tick := time.NewTicker(ackWait / 4)
		defer tick.Stop()
		for start := time.Now(); time.Since(start) < 2*ackWait; <-tick.C {
			require.NoError(t, d.InProgress(h.ctx()))
		}
		require.NoError(t, d.Ack(h.ctx()))

		second := h.publish("trade.executed", "next")[0]
		d = h.next(r)
		assert.Equal(t, second.ID, d.Envelope().ID, "a redelivery of the slow event would come first")
		require.NoError(t, d.Ack(h.ctx()))
	})

	t.Run("is settled once", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		h.publish("trade.executed", "{}")
		d := h.next(r)
		require.NoError(t, d.InProgress(h.ctx()))
		require.NoError(t, d.Ack(h.ctx()))
		assert.ErrorContains(t, d.Ack(h.ctx()), "already settled")
		assert.ErrorContains(t, d.Retry(h.ctx(), 0), "already settled")
		assert.ErrorContains(t, d.Reject(h.ctx()), "already settled")
		assert.ErrorContains(t, d.InProgress(h.ctx()), "already settled")
	})
}
