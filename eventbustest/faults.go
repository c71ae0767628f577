// The cases of RunBus for retries, dead letters and replay.

package eventbustest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

func testRetry(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[int](h, bus, "retried")
	var attempts atomic.Int32
	rec := RecordFunc(t, tp, func(context.Context, eventbus.Event[int]) error {
		if attempts.Add(1) < 3 {
			return errPurpose
		}
		return nil
	}, eventbus.Retry(3, nil), eventbus.Name(h.subName("retried")))

	require.NoError(t, tp.Publish(t.Context(), 42))
	rec.WaitN(h.caps.Timeout, 3)
	h.close(bus)

	evs := rec.Events()
	require.Len(t, evs, 3, "the handler was called once per attempt, and no more after it succeeded")
	for i, ev := range evs {
		assert.Equal(t, 42, ev.Payload, "attempt %d", i+1)
		assert.Equal(t, evs[0].ID, ev.ID, "attempt %d retries the same event", i+1)
	}
	st := bus.Stats()
	assert.EqualValues(t, 1, st.Delivered, "Stats.Delivered counts the event once")
	assert.EqualValues(t, 2, st.Retries, "Stats.Retries")
	assert.Zero(t, st.DeadLettered, "Stats.DeadLettered")
}

func testDeadLetter(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[int](h, bus, "doomed")
	letters := eventbus.DeadLetters(bus)
	dead := Record(t, letters)
	name := h.subName("doomed")
	failing := RecordFunc(t, tp, func(_ context.Context, ev eventbus.Event[int]) error {
		return fmt.Errorf("order %d rejected: %w", ev.Payload, errPurpose)
	}, eventbus.Retry(2, nil), eventbus.Name(name))

	require.NoError(t, tp.Publish(t.Context(), 7))
	// Over a broker the dead-letter topic may hold other runs' letters.
	mine := func(ev eventbus.Event[eventbus.DeadLetter]) bool { return ev.Payload.Topic == tp.Name() }
	letter := dead.WaitMatch(h.caps.Timeout, mine)
	h.close(bus)

	attempts := failing.Events()
	require.Len(t, attempts, 2, "the handler was called once per attempt")
	dl := letter.Payload
	assert.Equal(t, letters.Name(), letter.Topic, "the letter's own topic")
	assert.Equal(t, tp.Name(), dl.Topic, "DeadLetter.Topic")
	assert.Equal(t, attempts[0].ID, dl.EventID, "DeadLetter.EventID")
	assert.Equal(t, name, dl.Subscriber, "DeadLetter.Subscriber")
	assert.Equal(t, 2, dl.Attempts, "DeadLetter.Attempts")
	assert.Contains(t, dl.Error, "order 7 rejected", "DeadLetter.Error")
	assert.Contains(t, dl.Error, errPurpose.Error(), "DeadLetter.Error")
	assert.False(t, dl.Time.IsZero(), "DeadLetter.Time")
	// The payload's dynamic type is the backend's business (an int in
	// memory, decoded JSON over a broker); it must be there.
	assert.NotNil(t, dl.Payload, "DeadLetter.Payload")

	var count int
	for _, ev := range dead.Events() {
		if mine(ev) {
			count++
		}
	}
	assert.Equal(t, 1, count, "one dead letter for the event, not one per attempt")
	assert.EqualValues(t, 1, bus.Stats().DeadLettered, "Stats.DeadLettered")
}

func testReplay(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[string](h, bus, "replayed")
	quiet := topic[string](h, bus, "unpublished")
	require.NoError(t, tp.Publish(t.Context(), "A"))
	require.NoError(t, tp.Publish(t.Context(), "B"))

	replayed := Record(t, tp, eventbus.Replay())
	plain := Record(t, tp)
	nothingYet := Record(t, quiet, eventbus.Replay()) // nothing to replay
	require.NoError(t, tp.Publish(t.Context(), "C"))
	require.NoError(t, quiet.Publish(t.Context(), "X"))
	replayed.WaitN(h.caps.Timeout, 2)
	plain.WaitN(h.caps.Timeout, 1)
	nothingYet.WaitN(h.caps.Timeout, 1)
	h.close(bus)

	replayed.AssertPayloads([]string{"B", "C"})
	plain.AssertPayloads([]string{"C"})
	nothingYet.AssertPayloads([]string{"X"})
}
