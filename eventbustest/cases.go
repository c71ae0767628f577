package eventbustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// The cases of RunBus. Each works on its own bus and topics, waits with
// Recorders and deadlines, and checks what it can only after a Close that
// returned nil, when every accepted event has been handled: that is the one
// moment at which "nothing more arrives" can be asserted without sleeping,
// in memory and over a broker alike.

// ints returns 0, 1, ..., n-1.
func ints(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func testOrder(t *testing.T, h *harness) {
	const n = 1000
	bus := h.bus()
	tp := topic[int](h, bus, "ticks")
	recs := []*Recorder[int]{
		Record(t, tp),
		Record(t, tp, eventbus.Queue(16)), // a small buffer: the publisher waits for room
	}

	for i := range n {
		require.NoError(t, tp.Publish(t.Context(), i))
	}

	for _, rec := range recs {
		rec.WaitN(h.caps.Timeout, n)
		rec.AssertPayloads(ints(n))
	}
	h.close(bus)
	for _, rec := range recs {
		assert.Equal(t, n, rec.Len(), "no event was delivered twice")
	}
}

func testFanOut(t *testing.T, h *harness) {
	const n = 100
	bus := h.bus()
	tp := topic[string](h, bus, "quotes")
	recs := []*Recorder[string]{Record(t, tp), Record(t, tp), Record(t, tp)}

	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("quote-%d", i)
		require.NoError(t, tp.Publish(t.Context(), want[i]))
	}

	var ids [][]eventbus.ID
	for _, rec := range recs {
		evs := rec.WaitN(h.caps.Timeout, n)
		rec.AssertPayloads(want)
		ids = append(ids, eventIDs(evs))
	}
	for i := 1; i < len(ids); i++ {
		assert.Equal(t, ids[0], ids[i], "subscription %d got other event IDs than subscription 0: each event is delivered as itself", i)
	}
}

func eventIDs[T any](evs []eventbus.Event[T]) []eventbus.ID {
	out := make([]eventbus.ID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func testStamp(t *testing.T, h *harness) {
	const n = 100
	bus := h.bus()
	tp := topic[int](h, bus, "stamped")
	rec := Record(t, tp)

	before := time.Now()
	for i := range n {
		require.NoError(t, tp.Publish(t.Context(), i))
	}
	after := time.Now()

	seen := make(map[eventbus.ID]bool)
	for _, ev := range rec.WaitN(h.caps.Timeout, n) {
		assert.False(t, ev.ID.IsZero(), "event %d has no ID", ev.Payload)
		assert.False(t, seen[ev.ID], "event %d repeats ID %s", ev.Payload, ev.ID)
		seen[ev.ID] = true
		assert.Equal(t, tp.Name(), ev.Topic, "event %d", ev.Payload)
		// A bus may read a cheaper clock than time.Now; a second of slack
		// still catches a missing or wrong time.
		assert.WithinRange(t, ev.Time, before.Add(-time.Second), after.Add(time.Second), "event %d", ev.Payload)
		assert.Equal(t, time.UTC, ev.Time.Location(), "event %d: publish time in UTC", ev.Payload)
		assert.Equal(t, ev.Time.UnixMilli(), ev.ID.Time().UnixMilli(), "event %d: the ID carries the publish time", ev.Payload)
		assert.Empty(t, ev.Metadata, "event %d: no metadata was set", ev.Payload)
	}
}

func testPublishEvent(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[string](h, bus, "forwarded")
	rec := Record(t, tp)

	id := newID()
	sent := eventbus.Event[string]{
		ID:       id,
		Time:     id.Time().Add(123 * time.Microsecond), // finer than the ID's milliseconds
		Payload:  "forwarded",
		Metadata: map[string]string{"correlation_id": h.subName("corr"), "source": "eventbustest"},
	}
	require.NoError(t, tp.PublishEvent(t.Context(), sent))
	require.NoError(t, tp.PublishEvent(t.Context(), eventbus.Event[string]{Topic: tp.Name(), Payload: "fresh"}))
	err := tp.PublishEvent(t.Context(), eventbus.Event[string]{Topic: h.topicName("elsewhere"), Payload: "misrouted"})
	assert.ErrorIs(t, err, eventbus.ErrInvalidTopic, "an event of another topic")

	evs := rec.WaitN(h.caps.Timeout, 2)
	sent.Topic = tp.Name()
	if diff := cmp.Diff(sent, evs[0]); diff != "" {
		t.Errorf("the event differs from the one given to PublishEvent (-sent +received):\n%s", diff)
	}
	assert.False(t, evs[1].ID.IsZero(), "a zero ID is filled in")
	assert.NotEqual(t, id, evs[1].ID)
	assert.False(t, evs[1].Time.IsZero(), "a zero time is filled in")
	h.close(bus)
	rec.AssertPayloads([]string{"forwarded", "fresh"})
}

func testSubscribeAll(t *testing.T, h *harness) {
	bus := h.bus()
	numbers := topic[int](h, bus, "numbers")
	all := RecordAll(t, bus)
	words := topic[string](h, bus, "words") // made after SubscribeAll

	require.NoError(t, numbers.Publish(t.Context(), 1))
	require.NoError(t, words.Publish(t.Context(), "two"))
	require.NoError(t, numbers.Publish(t.Context(), 3))

	// Over a broker SubscribeAll may also see other runs' topics: look at
	// this case's only. Order is checked per topic; across topics it is
	// the backend's choice.
	mine := func(evs []eventbus.Event[any]) []eventbus.Event[any] {
		return slices.DeleteFunc(slices.Clone(evs), func(ev eventbus.Event[any]) bool {
			return ev.Topic != numbers.Name() && ev.Topic != words.Name()
		})
	}
	all.wait(h.caps.Timeout, func(evs []eventbus.Event[any]) bool {
		return len(mine(evs)) >= 3
	}, func() string { return "3 events of this case" })
	h.close(bus)

	got := map[string][]any{}
	for _, ev := range mine(all.Events()) {
		got[ev.Topic] = append(got[ev.Topic], ev.Payload)
	}
	want := map[string][]any{
		numbers.Name(): {1, 3}, // int, not float64 or json.Number: the payload keeps its Go type
		words.Name():   {"two"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SubscribeAll payloads per topic differ (-want +got):\n%s", diff)
	}
}

func testCloseDrains(t *testing.T, h *harness) {
	const publishers, each = 4, 2000
	bus := h.bus()
	tp := topic[int](h, bus, "orders")
	recs := []*Recorder[int]{
		Record(t, tp, eventbus.Queue(16)), // small: publishers are blocked on it when Close comes
		Record(t, tp),
	}

	var accepted [publishers][]int // accepted[p]: what publisher p's Publish returned nil for, in order
	// Close comes once a tenth of the events are accepted: in memory the
	// small queue holds the publishers back, over a broker nothing does,
	// and counting what was handled instead would let them publish nearly
	// all before Close, leaving a backlog that takes minutes to drain at a
	// round trip per acknowledgement.
	var published atomic.Int64
	flowing := make(chan struct{})
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				err := tp.Publish(context.Background(), p*each+i)
				if errors.Is(err, eventbus.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("publisher %d: Publish: %v", p, err)
					return
				}
				accepted[p] = append(accepted[p], p*each+i)
				if published.Add(1) == publishers*each/10 {
					close(flowing)
				}
			}
		})
	}
	// Close while the publishers are in full flow.
	select {
	case <-flowing:
	case <-time.After(h.caps.Timeout):
		t.Fatalf("the publishers did not accept %d events within %v", publishers*each/10, h.caps.Timeout)
	}
	h.close(bus)
	handled := make([][]int, len(recs))
	for i, rec := range recs {
		handled[i] = rec.Payloads() // what was handled by the time Close returned
	}
	wg.Wait()

	var total int
	for p := range publishers {
		total += len(accepted[p])
	}
	require.Positive(t, total)
	for i := range recs {
		// Per publisher: exactly what it had accepted, in its order.
		var got [publishers][]int
		for _, v := range handled[i] {
			got[v/each] = append(got[v/each], v)
		}
		if diff := cmp.Diff(accepted, got); diff != "" {
			t.Errorf("subscription %d: events handled when Close returned differ from those accepted (-accepted +handled):\n%s", i, diff)
		}
	}
	st := tp.Stats()
	assert.EqualValues(t, total, st.Published, "Stats.Published")
	assert.EqualValues(t, len(recs)*total, st.Delivered, "Stats.Delivered")
	assert.Zero(t, st.QueueSize, "Stats.QueueSize after Close")
	assert.Zero(t, st.Undelivered, "Stats.Undelivered")
}

func testClosed(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[int](h, bus, "closed")
	rec := Record(t, tp)
	require.NoError(t, tp.Publish(t.Context(), 1))
	h.close(bus)

	nop := func(context.Context, eventbus.Event[int]) error { return nil }
	nopAll := func(context.Context, eventbus.Event[any]) error { return nil }
	_, errSub := tp.Subscribe(nop)
	_, errAll := eventbus.SubscribeAll(bus, nopAll)
	for what, err := range map[string]error{
		"Publish":      tp.Publish(t.Context(), 2),
		"PublishWait":  tp.PublishWait(t.Context(), 3),
		"PublishEvent": tp.PublishEvent(t.Context(), eventbus.Event[int]{Payload: 4}),
		"Subscribe":    errSub,
		"SubscribeAll": errAll,
	} {
		assert.ErrorIs(t, err, eventbus.ErrClosed, "%s after Close", what)
	}
	assert.NoError(t, bus.Close(t.Context()), "Close again")
	rec.AssertPayloads([]int{1})
}

func testUnsubscribe(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[int](h, bus, "unsubscribed")
	leaving, staying := Record(t, tp), Record(t, tp)

	for i := range 10 {
		require.NoError(t, tp.Publish(t.Context(), i))
	}
	leaving.WaitN(h.caps.Timeout, 10)
	sub := leaving.Subscription()
	require.NoError(t, sub.Unsubscribe())
	require.NoError(t, sub.Unsubscribe(), "Unsubscribe again")
	for i := 10; i < 20; i++ {
		require.NoError(t, tp.Publish(t.Context(), i))
	}
	staying.WaitN(h.caps.Timeout, 20)
	h.close(bus)

	leaving.AssertPayloads(ints(10))
	staying.AssertPayloads(ints(20))
	assert.NoError(t, sub.Unsubscribe(), "Unsubscribe after Close")
}

func testUnsubscribeQueued(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[int](h, bus, "queued")
	release := make(chan struct{})
	held := RecordFunc(t, tp, func(context.Context, eventbus.Event[int]) error {
		<-release
		return nil
	})
	other := Record(t, tp)
	for i := range 10 {
		require.NoError(t, tp.Publish(t.Context(), i))
	}
	held.WaitN(h.caps.Timeout, 1) // the handler holds event 0; 1 to 9 wait

	// Unsubscribe must not wait for the handler it interrupts (a handler
	// may unsubscribe itself), so it runs aside to turn a hang into a failure.
	done := make(chan error, 1)
	go func() { done <- held.Subscription().Unsubscribe() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(h.caps.Timeout):
		close(release)
		t.Fatalf("Unsubscribe did not return within %v while the subscription's handler was running", h.caps.Timeout)
	}
	close(release)
	other.WaitN(h.caps.Timeout, 10)
	h.close(bus)

	held.AssertPayloads([]int{0})
	other.AssertPayloads(ints(10))
}

// errPurpose is the error of handlers that fail on purpose.
var errPurpose = errors.New("eventbustest: handler failed on purpose")

func testFailures(t *testing.T, h *harness) {
	const n = 10
	bus := h.bus()
	tp := topic[int](h, bus, "faulty")
	failing := RecordFunc(t, tp, func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload%2 == 0 {
			return errPurpose
		}
		return nil
	})
	panicking := RecordFunc(t, tp, func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 3 {
			panic("eventbustest: handler panicked on purpose")
		}
		return nil
	})
	healthy := Record(t, tp)

	for i := range n {
		require.NoError(t, tp.Publish(t.Context(), i))
	}
	for _, rec := range []*Recorder[int]{failing, panicking, healthy} {
		rec.WaitN(h.caps.Timeout, n)
	}
	h.close(bus)

	healthy.AssertPayloads(ints(n))
	failing.AssertPayloads(ints(n))   // went on after its own errors
	panicking.AssertPayloads(ints(n)) // went on after its own panic
	st := tp.Stats()
	assert.EqualValues(t, 3*n, st.Dispatched, "Stats.Dispatched")
	assert.EqualValues(t, 3*n-n/2-1, st.Delivered, "Stats.Delivered")
	assert.EqualValues(t, n/2+1, st.Errors, "Stats.Errors: errors and panics")
	assert.EqualValues(t, 1, st.Panics, "Stats.Panics")
}

func testPublishWait(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[int](h, bus, "waited")
	failName, panicName := h.subName("failing"), h.subName("panicking")
	failing := RecordFunc(t, tp, func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 7 {
			return fmt.Errorf("payload 7: %w", errPurpose)
		}
		return nil
	}, eventbus.Name(failName))
	panicking := RecordFunc(t, tp, func(_ context.Context, ev eventbus.Event[int]) error {
		if ev.Payload == 7 {
			panic("eventbustest: handler panicked on purpose")
		}
		return nil
	}, eventbus.Name(panicName))
	healthy := Record(t, tp)

	err := tp.PublishWait(t.Context(), 7)
	require.Error(t, err)
	assert.ErrorIs(t, err, errPurpose, "the handler's error is in the chain")
	// PublishWait returned after every subscription handled the event, so
	// each has recorded it already: no waiting here.
	for _, rec := range []*Recorder[int]{failing, panicking, healthy} {
		assert.Equal(t, 1, rec.Len(), "subscription %s handled the event before PublishWait returned", rec.Subscription().Name())
	}
	id := healthy.Events()[0].ID

	hes := handlerErrors(err)
	require.Len(t, hes, 2, "one HandlerError per failed subscription in %v", err)
	slices.SortFunc(hes, func(a, b *eventbus.HandlerError) int { return strings.Compare(a.Subscriber, b.Subscriber) })
	for _, he := range hes {
		assert.Equal(t, tp.Name(), he.Topic, "HandlerError.Topic")
		assert.Equal(t, id, he.EventID, "HandlerError.EventID")
		assert.Equal(t, 1, he.Attempt, "HandlerError.Attempt")
	}
	byName := map[string]*eventbus.HandlerError{hes[0].Subscriber: hes[0], hes[1].Subscriber: hes[1]}
	if he := byName[failName]; assert.NotNil(t, he, "no HandlerError from %s", failName) {
		assert.False(t, he.Panic)
		assert.ErrorIs(t, he, errPurpose)
	}
	if he := byName[panicName]; assert.NotNil(t, he, "no HandlerError from %s", panicName) {
		assert.True(t, he.Panic, "HandlerError.Panic")
		assert.ErrorContains(t, he, "panicked on purpose")
	}

	assert.NoError(t, tp.PublishWait(t.Context(), 8), "PublishWait when every handler succeeds")
	healthy.AssertPayloads([]int{7, 8})
}

// handlerErrors returns every *HandlerError in the tree of err, which
// errors.As alone would stop at the first of.
func handlerErrors(err error) []*eventbus.HandlerError {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*eventbus.HandlerError
		for _, e := range joined.Unwrap() {
			out = append(out, handlerErrors(e)...)
		}
		return out
	}
	if he, ok := errors.AsType[*eventbus.HandlerError](err); ok {
		return []*eventbus.HandlerError{he}
	}
	return nil
}

// order is a payload with a Validate method.
type order struct {
	Symbol string
	Qty    int
}

var errQty = errors.New("qty must be positive")

func (o order) Validate() error {
	if o.Qty <= 0 {
		return errQty
	}
	return nil
}

func testValidation(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[order](h, bus, "orders")
	rec := Record(t, tp)
	bad, good := order{Symbol: "BTCUSDT"}, order{Symbol: "BTCUSDT", Qty: 1}

	for what, err := range map[string]error{
		"Publish":      tp.Publish(t.Context(), bad),
		"PublishWait":  tp.PublishWait(t.Context(), bad),
		"PublishEvent": tp.PublishEvent(t.Context(), eventbus.Event[order]{Payload: bad}),
	} {
		ve, ok := errors.AsType[*eventbus.ValidationError](err)
		if assert.True(t, ok, "%s of an invalid payload returned %v, want a *ValidationError", what, err) {
			assert.Equal(t, tp.Name(), ve.Topic, "%s: ValidationError.Topic", what)
			assert.ErrorIs(t, err, errQty, "%s: the Validate error is in the chain", what)
		}
	}
	require.NoError(t, tp.Publish(t.Context(), good))
	rec.WaitN(h.caps.Timeout, 1)
	h.close(bus)

	rec.AssertPayloads([]order{good})
	assert.EqualValues(t, 1, tp.Stats().Published, "Stats.Published counts the valid event only")
}

func testPublishFromHandler(t *testing.T, h *harness) {
	const last = 5
	bus := h.bus()
	chain := topic[int](h, bus, "chain")
	echo := topic[int](h, bus, "echo")
	echoes := Record(t, echo)
	links := RecordFunc(t, chain, func(ctx context.Context, ev eventbus.Event[int]) error {
		if err := echo.Publish(ctx, ev.Payload); err != nil {
			return err
		}
		if ev.Payload < last {
			return chain.Publish(ctx, ev.Payload+1)
		}
		return nil
	})

	require.NoError(t, chain.Publish(t.Context(), 0))
	links.WaitN(h.caps.Timeout, last+1)
	echoes.WaitN(h.caps.Timeout, last+1)
	h.close(bus)

	links.AssertPayloads(ints(last + 1))
	echoes.AssertPayloads(ints(last + 1))
	assert.Zero(t, chain.Stats().Errors, "no publish from the handler failed")
}

func testTopicNames(t *testing.T, h *harness) {
	bus := h.bus()
	pad := func(total int) string { // a name of total bytes
		return h.topicName(strings.Repeat("n", total-len(h.topicName(""))))
	}
	valid := []struct{ what, name string }{
		{"one token", "single"},
		{"letters, digits, '_' and '-' in dot-separated tokens", h.topicName("Az_09-x.y")},
		{"255 bytes", pad(255)},
	}
	invalid := []struct{ what, name string }{
		{"an empty name", ""},
		{"a lone dot", "."},
		{"a leading dot", ".a"},
		{"a trailing dot", "a."},
		{"an empty token", "a..b"},
		{"a space", "a b"},
		{"a tab", "a\tb"},
		{"a NATS wildcard '*'", "a.*"},
		{"a NATS wildcard '>'", "a.>"},
		{"a slash", "a/b"},
		{"a non-ASCII letter", "\u00fc"},
		{"256 bytes", pad(256)},
	}
	for _, tt := range valid {
		t.Run("accepts "+tt.what, func(t *testing.T) {
			_, err := eventbus.NewTopic[int](bus, tt.name)
			assert.NoError(t, err, "NewTopic(%q)", tt.name)
		})
	}
	for _, tt := range invalid {
		t.Run("rejects "+tt.what, func(t *testing.T) {
			_, err := eventbus.NewTopic[int](bus, tt.name)
			assert.ErrorIs(t, err, eventbus.ErrInvalidTopic, "NewTopic(%q)", tt.name)
			assert.Panics(t, func() { eventbus.MustTopic[int](bus, tt.name) }, "MustTopic(%q)", tt.name)
		})
	}
}

func testTopicType(t *testing.T, h *harness) {
	bus := h.bus()
	a := topic[int](h, bus, "typed")
	b := topic[int](h, bus, "typed")
	assert.Same(t, a, b, "the same name and type give the same topic")
	_, err := eventbus.NewTopic[string](bus, a.Name())
	assert.ErrorIs(t, err, eventbus.ErrTopicType, "the same name with another type")
}

func testNilHandler(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[int](h, bus, "nil")
	sub, err := tp.Subscribe(nil)
	assert.ErrorIs(t, err, eventbus.ErrNilHandler, "Subscribe")
	assert.Nil(t, sub)
	sub, err = eventbus.SubscribeAll(bus, nil)
	assert.ErrorIs(t, err, eventbus.ErrNilHandler, "SubscribeAll")
	assert.Nil(t, sub)
	assert.Zero(t, bus.Stats().TotalHandlers, "no subscription is left behind")
}

type ctxKey struct{}

func testSync(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[int](h, bus, "inline")
	var gotCtx any // written by the handler in this goroutine
	rec := RecordFunc(t, tp, func(ctx context.Context, _ eventbus.Event[int]) error {
		gotCtx = ctx.Value(ctxKey{})
		return nil
	}, eventbus.Sync())
	all := RecordAll(t, bus, eventbus.Sync())

	ctx := context.WithValue(t.Context(), ctxKey{}, "the publisher's")
	require.NoError(t, tp.Publish(ctx, 1))

	assert.Equal(t, 1, rec.Len(), "the Sync handler ran before Publish returned")
	assert.Equal(t, 1, all.Len(), "the Sync SubscribeAll handler ran before Publish returned")
	assert.Equal(t, "the publisher's", gotCtx, "the Sync handler got the publisher's ctx")
	assert.True(t, rec.Subscription().Stats().Sync, "SubscriptionStats.Sync")
}

func testLatest(t *testing.T, h *harness) {
	bus := h.bus()
	tp := topic[string](h, bus, "status")
	_, ok := tp.Latest()
	assert.False(t, ok, "Latest before any publish")
	rec := Record(t, tp)

	require.NoError(t, tp.Publish(t.Context(), "first"))
	require.NoError(t, tp.Publish(t.Context(), "second"))

	last := rec.WaitN(h.caps.Timeout, 2)[1]
	ev, ok := tp.Latest()
	require.True(t, ok, "Latest after two publishes")
	if diff := cmp.Diff(last, ev, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Latest differs from the last event delivered (-delivered +latest):\n%s", diff)
	}
}

func testDurableResume(t *testing.T, h *harness) {
	name := h.subName("durable")
	first := h.bus()
	tp := topic[int](h, first, "resumed")
	before := Record(t, tp, eventbus.Name(name))
	require.NoError(t, tp.Publish(t.Context(), 1))
	require.NoError(t, tp.Publish(t.Context(), 2))
	before.WaitN(h.caps.Timeout, 2)
	h.close(first)

	second := h.bus()
	tp = topic[int](h, second, "resumed")
	require.NoError(t, tp.Publish(t.Context(), 3)) // while no subscription of that name runs
	after := Record(t, tp, eventbus.Name(name))
	require.NoError(t, tp.Publish(t.Context(), 4))
	after.WaitN(h.caps.Timeout, 2)
	h.close(second)

	before.AssertPayloads([]int{1, 2})
	after.AssertPayloads([]int{3, 4})
}
