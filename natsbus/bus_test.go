package natsbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbustest"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// newNATSBus returns a function making buses that share one stream on srv,
// as processes of one system would.
func newNATSBus(srv *natstest.Server, names natstest.Names) func(t *testing.T) *eventbus.Bus {
	return func(t *testing.T) *eventbus.Bus {
		t.Helper()
		nc := srv.Connect(t)
		tr, err := natsbus.New(nc, names.Options()...)
		require.NoError(t, err)
		bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		return bus
	}
}

func TestNATSBusPassesTheConformanceSuite(t *testing.T) {
	srv := natstest.Start(t)
	eventbustest.RunBus(t, newNATSBus(srv, srv.Names(t)), eventbustest.Capabilities{
		Latest:        true,
		DurableResume: true,
		// PublishWait: the handlers may be in other processes.
		// Sync: a handler cannot run in the publisher's goroutine across a broker.
		Timeout: 20 * time.Second,
	})
}

// world is one test's stream on its server, shared by buses that stand for
// processes of one system.
type world struct {
	t     *testing.T
	srv   *natstest.Server
	names natstest.Names
	js    jetstream.JetStream
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return worldOn(t, natstest.Start(t))
}

// worldOn is newWorld on a server the test chose.
func worldOn(t *testing.T, srv *natstest.Server) *world {
	t.Helper()
	w := &world{t: t, srv: srv, names: srv.Names(t)}
	js, err := jetstream.New(srv.Connect(t))
	require.NoError(t, err)
	w.js = js
	return w
}

// bus starts a process: a bus over a connection and transport of its own,
// quiet unless opts give a logger, closed when the test ends.
func (w *world) bus(opts ...eventbus.Option) *eventbus.Bus {
	w.t.Helper()
	tr, err := natsbus.New(w.srv.Connect(w.t), w.names.Options()...)
	require.NoError(w.t, err)
	bus, err := eventbus.New(append([]eventbus.Option{
		eventbus.WithTransport(tr), eventbus.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)...)
	require.NoError(w.t, err)
	w.t.Cleanup(func() { w.close(bus) })
	return bus
}

// close closes bus, failing the test if it does not drain in time.
func (w *world) close(bus *eventbus.Bus) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	assert.NoError(w.t, bus.Close(ctx), "Close")
}

// transport is a bare transport on the world's stream, for what the typed
// API would refuse to publish.
func (w *world) transport() eventbus.Transport {
	w.t.Helper()
	tr, err := natsbus.New(w.srv.Connect(w.t), w.names.Options()...)
	require.NoError(w.t, err)
	w.t.Cleanup(func() { _ = tr.Close(context.Background()) })
	return tr
}

// stored is how many messages the stream holds.
func (w *world) stored() uint64 {
	w.t.Helper()
	s, err := w.js.Stream(w.t.Context(), w.names.Stream)
	require.NoError(w.t, err)
	info, err := s.Info(w.t.Context())
	require.NoError(w.t, err)
	return info.State.Msgs
}

// consumers lists the consumers on the world's stream.
func (w *world) consumers() []string {
	w.t.Helper()
	s, err := w.js.Stream(w.t.Context(), w.names.Stream)
	require.NoError(w.t, err)
	names := []string{}
	lister := s.ConsumerNames(w.t.Context())
	for n := range lister.Name() {
		names = append(names, n)
	}
	require.NoError(w.t, lister.Err())
	return names
}

// ackFloor returns the stream sequence up to which the consumer whose
// name starts with prefix has acknowledged everything, or 0.
func (w *world) ackFloor(prefix string) uint64 {
	w.t.Helper()
	for _, name := range w.consumers() {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		c, err := w.js.Consumer(w.t.Context(), w.names.Stream, name)
		require.NoError(w.t, err)
		info, err := c.Info(w.t.Context())
		require.NoError(w.t, err)
		return info.AckFloor.Stream
	}
	return 0
}

func publish[T any](t *testing.T, topic *eventbus.Topic[T], payloads ...T) {
	t.Helper()
	for _, p := range payloads {
		require.NoError(t, topic.Publish(t.Context(), p))
	}
}

func count(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestBusOverNATS checks, at the typed level, what the conformance suite
// cannot: the semantics that exist only over a broker, across processes.
func TestBusOverNATS(t *testing.T) {
	t.Parallel()

	t.Run("gives each event of a group to one member, and every event to other subscriptions", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		const n = 60
		producer, p1, p2 := w.bus(), w.bus(), w.bus()
		orders := eventbus.MustTopic[int](producer, "orders")
		members := []*eventbustest.Recorder[int]{
			eventbustest.Record(t, eventbus.MustTopic[int](p1, "orders"), eventbus.Group("executors")),
			eventbustest.Record(t, eventbus.MustTopic[int](p2, "orders"), eventbus.Group("executors")),
		}
		auditors := eventbustest.Record(t, eventbus.MustTopic[int](p1, "orders"), eventbus.Group("auditors"))
		plain := eventbustest.Record(t, eventbus.MustTopic[int](p2, "orders"))
		publish(t, orders, count(n)...)

		auditors.WaitN(waitFor, n)
		plain.WaitN(waitFor, n)
		w.close(p1)
		w.close(p2)
		auditors.AssertPayloads(count(n))
		plain.AssertPayloads(count(n))
		var shared []int
		for _, m := range members {
			shared = append(shared, m.Payloads()...)
		}
		slices.Sort(shared)
		assert.Equal(t, count(n), shared, "each event handled by exactly one member of the group")
		t.Logf("the members handled %d and %d events", members[0].Len(), members[1].Len())
	})

	t.Run("resumes a group where it stopped, without what it acknowledged", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		producer, first := w.bus(), w.bus()
		orders := eventbus.MustTopic[int](producer, "orders")
		before := eventbustest.Record(t, eventbus.MustTopic[int](first, "orders"), eventbus.Group("executors"))
		publish(t, orders, 1, 2)
		before.WaitN(waitFor, 2)
		w.close(first)

		publish(t, orders, 3) // while the group has no member
		after := eventbustest.Record(t, eventbus.MustTopic[int](w.bus(), "orders"), eventbus.Group("executors"))
		publish(t, orders, 4)
		after.WaitN(waitFor, 2)
		before.AssertPayloads([]int{1, 2})
		after.AssertPayloads([]int{3, 4})
	})

	t.Run("starts an ephemeral subscription at new events and deletes its consumer", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		producer, consumer := w.bus(), w.bus()
		orders := eventbus.MustTopic[int](producer, "orders")
		publish(t, orders, 1)
		rec := eventbustest.Record(t, eventbus.MustTopic[int](consumer, "orders"))
		named := eventbustest.Record(t, eventbus.MustTopic[int](consumer, "orders"), eventbus.Name("ledger"))
		require.Len(t, w.consumers(), 2)
		publish(t, orders, 2)
		rec.WaitN(waitFor, 1)
		named.WaitN(waitFor, 1)

		require.NoError(t, rec.Subscription().Unsubscribe())
		// The handler may have returned and its ack not yet: the consumer
		// goes once the delivery under way is settled.
		assert.Eventually(t, func() bool { return len(w.consumers()) == 1 }, waitFor, 10*time.Millisecond,
			"Unsubscribe deletes the ephemeral consumer, keeps the durable one")
		w.close(consumer)
		assert.Len(t, w.consumers(), 1, "the durable consumer outlives its process")
		rec.AssertPayloads([]int{2})
		named.AssertPayloads([]int{2})
	})

	t.Run("retries after the backoff, then dead-letters and terminates the event", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		const backoff = 150 * time.Millisecond
		producer, consumer := w.bus(), w.bus()
		orders := eventbus.MustTopic[int](producer, "orders")
		letters := eventbustest.Record(t, eventbus.DeadLetters(producer)) // in another process
		failing := eventbustest.RecordFunc(t, eventbus.MustTopic[int](consumer, "orders"),
			func(_ context.Context, ev eventbus.Event[int]) error {
				if ev.Payload == 1 {
					return fmt.Errorf("order %d: %w", ev.Payload, errPurpose)
				}
				return nil
			},
			eventbus.Name("executor"), eventbus.Retry(3, func(int) time.Duration { return backoff }))
		publish(t, orders, 1, 2)

		evs := failing.WaitN(waitFor, 4) // three attempts of 1, then 2: the order holds
		letter := letters.WaitN(waitFor, 1)[0].Payload
		w.close(consumer)
		assert.Equal(t, []int{1, 1, 1, 2}, failing.Payloads())
		for i := 1; i < 3; i++ {
			assert.Equal(t, evs[0].ID, evs[i].ID, "attempt %d retries the same event", i+1)
		}
		assert.Equal(t, "orders", letter.Topic)
		assert.Equal(t, evs[0].ID, letter.EventID)
		assert.Equal(t, "executor", letter.Subscriber)
		assert.Equal(t, 3, letter.Attempts)
		assert.Contains(t, letter.Error, "order 1")
		assert.JSONEq(t, "1", string(mustJSON(t, letter.Payload)))
		st := consumer.Stats()
		assert.EqualValues(t, 2, st.Retries, "Stats.Retries")
		assert.EqualValues(t, 1, st.DeadLettered, "Stats.DeadLettered")
		assert.EqualValues(t, 1, st.Delivered, "Stats.Delivered")

		// Terminated: a new process of the same name does not get it again.
		again := eventbustest.Record(t, eventbus.MustTopic[int](w.bus(), "orders"), eventbus.Name("executor"))
		publish(t, orders, 3)
		again.WaitN(waitFor, 1)
		again.AssertPayloads([]int{3})
	})

	t.Run("waits the backoff between attempts", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		const backoff = 200 * time.Millisecond
		bus := w.bus()
		orders := eventbus.MustTopic[int](bus, "orders")
		var calls []time.Time
		var mu sync.Mutex
		rec := eventbustest.RecordFunc(t, orders, func(context.Context, eventbus.Event[int]) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, time.Now())
			if len(calls) < 3 {
				return errPurpose
			}
			return nil
		}, eventbus.Retry(3, func(int) time.Duration { return backoff }))
		publish(t, orders, 1)
		rec.WaitN(waitFor, 3)
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < len(calls); i++ {
			assert.GreaterOrEqual(t, calls[i].Sub(calls[i-1]), backoff, "the wait before attempt %d", i+1)
		}
	})

	t.Run("dead-letters a payload that does not decode at once, with the decode error", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		var reported []*eventbus.HandlerError
		var mu sync.Mutex
		consumer := w.bus(eventbus.WithErrorHandler(func(he *eventbus.HandlerError) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, he)
		}))
		letters := eventbustest.Record(t, eventbus.DeadLetters(consumer))
		rec := eventbustest.Record(t, eventbus.MustTopic[int](consumer, "orders"), eventbus.Retry(5, nil))

		bad := &eventbus.Envelope{ID: newID(), Topic: "orders", Time: time.Now().UTC(), Data: []byte(`"not a number"`)}
		require.NoError(t, w.transport().Publish(t.Context(), bad))
		publish(t, eventbus.MustTopic[int](w.bus(), "orders"), 7)

		rec.WaitN(waitFor, 1)
		letter := letters.WaitN(waitFor, 1)[0].Payload
		w.close(consumer)
		rec.AssertPayloads([]int{7}) // the handler never saw the bad one, and the next came after it
		assert.Equal(t, bad.ID, letter.EventID)
		assert.Equal(t, 1, letter.Attempts, "dead-lettered at the first delivery, not retried")
		assert.Contains(t, letter.Error, "cannot decode the orders payload")
		assert.JSONEq(t, `"not a number"`, string(mustJSON(t, letter.Payload)), "the payload as it came")
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, reported, 1)
		assert.Equal(t, bad.ID, reported[0].EventID)
		st := consumer.Stats()
		assert.EqualValues(t, 1, st.Errors)
		assert.Zero(t, st.Retries)
	})

	t.Run("keeps a slow handler's event from going to another member while it runs", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		const ackWait = 400 * time.Millisecond
		var logs syncBuffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		slow, idle := w.bus(eventbus.WithAckWait(ackWait), eventbus.WithLogger(logger), eventbus.WithStallTimeout(ackWait)),
			w.bus(eventbus.WithAckWait(ackWait))
		var calls atomic.Int32
		started := make(chan struct{})
		handler := func(ctx context.Context, _ eventbus.Event[int]) error {
			if calls.Add(1) == 1 {
				close(started)
			}
			select { // a handler working for three times the ack wait
			case <-time.After(3 * ackWait):
			case <-ctx.Done():
			}
			return nil
		}
		rec := eventbustest.RecordFunc(t, eventbus.MustTopic[int](slow, "orders"), handler, eventbus.Group("executors"), eventbus.Name("slow"))
		publish(t, eventbus.MustTopic[int](w.bus(), "orders"), 1)
		receive(t, started, "the slow handler to start")
		other := eventbustest.RecordFunc(t, eventbus.MustTopic[int](idle, "orders"), handler, eventbus.Group("executors"))
		rec.WaitN(waitFor, 1)
		w.close(slow)
		w.close(idle)
		assert.EqualValues(t, 1, calls.Load(), "the event was handled once")
		assert.Zero(t, other.Len())
		assert.Contains(t, logs.String(), "eventbus: handler stalled", "the stall is logged")
		assert.Contains(t, logs.String(), "subscriber=slow")
	})

	t.Run("runs Concurrency handlers at once", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		const n = 3
		bus := w.bus()
		orders := eventbus.MustTopic[int](bus, "orders")
		var in sync.WaitGroup
		in.Add(n)
		all := make(chan struct{})
		go func() { in.Wait(); close(all) }()
		rec := eventbustest.RecordFunc(t, orders, func(ctx context.Context, _ eventbus.Event[int]) error {
			in.Done()
			select { // each waits for the others: they must run at once
			case <-all:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}, eventbus.Concurrency(n))
		publish(t, orders, count(n)...)
		rec.WaitN(waitFor, n)
	})

	t.Run("gives a Replay subscription the last event the stream holds", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		producer := w.bus()
		status := eventbus.MustTopic[string](producer, "status")
		publish(t, status, "A", "B")
		rec := eventbustest.Record(t, eventbus.MustTopic[string](w.bus(), "status"), eventbus.Replay())
		publish(t, status, "C")
		rec.WaitN(waitFor, 2)
		rec.AssertPayloads([]string{"B", "C"})
	})

	t.Run("stores an event published twice with the same ID once", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		bus := w.bus()
		orders := eventbus.MustTopic[int](bus, "orders")
		rec := eventbustest.Record(t, orders)
		ev := eventbus.Event[int]{ID: newID(), Time: time.Now().UTC(), Payload: 1}
		require.NoError(t, orders.PublishEvent(t.Context(), ev))
		require.NoError(t, orders.PublishEvent(t.Context(), ev), "a repeated publish succeeds")
		publish(t, orders, 2)
		rec.WaitN(waitFor, 2)
		w.close(bus)
		rec.AssertPayloads([]int{1, 2})
		assert.EqualValues(t, 2, w.stored(), "messages in the stream")
	})

	t.Run("gives SubscribeAll the topics its bus knows, whoever publishes", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		producer, consumer := w.bus(), w.bus()
		eventbus.MustTopic[int](consumer, "numbers")
		all := eventbustest.RecordAll(t, consumer)
		eventbus.MustTopic[string](consumer, "words") // made after SubscribeAll
		require.NoError(t, eventbus.MustTopic[int](producer, "numbers").Publish(t.Context(), 1))
		require.NoError(t, eventbus.MustTopic[string](producer, "unknown").Publish(t.Context(), "not for it"))
		require.NoError(t, eventbus.MustTopic[string](producer, "words").Publish(t.Context(), "two"))
		all.WaitN(waitFor, 2)
		w.close(consumer)
		got := map[string]any{}
		for _, ev := range all.Events() {
			got[ev.Topic] = ev.Payload
		}
		assert.Equal(t, map[string]any{"numbers": 1, "words": "two"}, got, "typed payloads of the known topics only")
	})

	t.Run("refuses what needs the publisher and the handlers in one process", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		bus := w.bus()
		orders := eventbus.MustTopic[int](bus, "orders")
		nop := func(context.Context, eventbus.Event[int]) error { return nil }
		for what, opt := range map[string]eventbus.SubOption{
			"Sync":               eventbus.Sync(),
			"OnFull(DropNewest)": eventbus.OnFull(eventbus.DropNewest),
			"OnFull(DropOldest)": eventbus.OnFull(eventbus.DropOldest),
			"OnFull(Reject)":     eventbus.OnFull(eventbus.Reject),
			"PartitionBy":        eventbus.PartitionBy(func(int) string { return "" }),
		} {
			_, err := orders.Subscribe(nop, opt)
			assert.ErrorIs(t, err, eventbus.ErrInvalidOption, what)
			assert.ErrorIs(t, err, errors.ErrUnsupported, what)
		}
		err := orders.PublishWait(t.Context(), 1)
		assert.ErrorIs(t, err, errors.ErrUnsupported, "PublishWait")
		assert.ErrorContains(t, err, "orders")
		assert.Zero(t, w.stored(), "PublishWait published nothing")
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// errPurpose is the error of handlers that fail on purpose.
var errPurpose = errors.New("natsbus_test: handler failed on purpose")

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
