package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// fakeTransport is a Transport in memory that records what the typed
// layer asks of it, so the layer can be tested without a broker: each
// published envelope goes to every receiver of its topic.
type fakeTransport struct {
	mu         sync.Mutex
	log        []string // what happened, in order: "publish <topic>", "drain", "stop", "close"
	published  []*eventbus.Envelope
	receivers  []*fakeReceiver
	publishErr error
	failTopic  string                          // Subscribe to this topic fails
	drain      func(ctx context.Context) error // nil: receivers do not implement Drainer
}

func (f *fakeTransport) record(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, what)
}

func (f *fakeTransport) events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func (f *fakeTransport) Publish(_ context.Context, env *eventbus.Envelope) error {
	if f.publishErr != nil {
		return f.publishErr
	}
	f.record("publish " + env.Topic)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, env)
	for _, r := range f.receivers {
		if r.opts.Topic == env.Topic {
			r.deliver(env, 1)
		}
	}
	return nil
}

func (f *fakeTransport) Subscribe(_ context.Context, opts eventbus.SubscribeOptions) (eventbus.Receiver, error) {
	if opts.Topic == f.failTopic {
		return nil, errBroker
	}
	r := &fakeReceiver{t: f, opts: opts, ch: make(chan eventbus.Delivery, 64), stop: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.receivers = append(f.receivers, r)
	if f.drain != nil {
		return &drainingReceiver{r}, nil
	}
	return r, nil
}

func (f *fakeTransport) Close(context.Context) error {
	f.record("close")
	return nil
}

type fakeReceiver struct {
	t    *fakeTransport
	opts eventbus.SubscribeOptions
	ch   chan eventbus.Delivery
	stop chan struct{}
	once sync.Once
}

func (r *fakeReceiver) deliver(env *eventbus.Envelope, attempt int) {
	r.ch <- &fakeDelivery{r: r, env: env, attempt: attempt}
}

func (r *fakeReceiver) Next(ctx context.Context) (eventbus.Delivery, error) {
	select {
	case d := <-r.ch:
		return d, nil
	case <-r.stop:
		return nil, eventbus.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *fakeReceiver) Stop(context.Context) error {
	r.once.Do(func() {
		r.t.record("stop")
		close(r.stop)
	})
	return nil
}

// drainingReceiver is a fakeReceiver that implements eventbus.Drainer.
type drainingReceiver struct{ *fakeReceiver }

func (r *drainingReceiver) Drain(ctx context.Context) error {
	r.t.record("drain")
	return r.t.drain(ctx)
}

// fakeDelivery records its settlement; a retry delivers it again at once,
// with the next attempt number.
type fakeDelivery struct {
	r       *fakeReceiver
	env     *eventbus.Envelope
	attempt int
}

func (d *fakeDelivery) Envelope() *eventbus.Envelope { return d.env }
func (d *fakeDelivery) Attempt() int                 { return d.attempt }
func (d *fakeDelivery) Ack(context.Context) error {
	d.r.t.record(fmt.Sprintf("ack %s attempt %d", d.env.Topic, d.attempt))
	return nil
}
func (d *fakeDelivery) Retry(_ context.Context, delay time.Duration) error {
	d.r.t.record(fmt.Sprintf("retry %s attempt %d after %v", d.env.Topic, d.attempt, delay))
	d.r.deliver(d.env, d.attempt+1)
	return nil
}
func (d *fakeDelivery) Reject(context.Context) error {
	d.r.t.record(fmt.Sprintf("reject %s attempt %d", d.env.Topic, d.attempt))
	return nil
}
func (d *fakeDelivery) InProgress(context.Context) error { return nil }

func newFakeBus(t *testing.T, f *fakeTransport, opts ...eventbus.Option) *eventbus.Bus {
	t.Helper()
	bus, err := eventbus.New(append([]eventbus.Option{quiet, eventbus.WithTransport(f)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { // bounded, as a Close that hangs would hang the run
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = bus.Close(ctx) // most tests close the bus themselves, and check the error
	})
	return bus
}

var errBroker = errors.New("broker says no")

type fill struct {
	Symbol string `json:"symbol"`
	Qty    int    `json:"qty"`
}

func TestTransportPublishEncodesTheEventAndNamesTheTopicOnFailure(t *testing.T) {
	f := &fakeTransport{}
	fills := eventbus.MustTopic[fill](newFakeBus(t, f), "trade.filled")
	require.NoError(t, fills.PublishEvent(t.Context(), eventbus.Event[fill]{
		Payload: fill{"BTCUSDT", 2}, Metadata: map[string]string{"source": "test"},
	}))
	require.Len(t, f.published, 1)
	env := f.published[0]
	assert.Equal(t, "trade.filled", env.Topic)
	assert.False(t, env.ID.IsZero())
	assert.False(t, env.Time.IsZero())
	assert.Equal(t, map[string]string{"source": "test"}, env.Metadata)
	assert.JSONEq(t, `{"symbol":"BTCUSDT","qty":2}`, string(env.Data), "the default codec is JSON")
	latest, ok := fills.Latest()
	require.True(t, ok)
	assert.Equal(t, env.ID, latest.ID, "Latest is the event the broker stored")

	down := errors.New("broker down")
	f.publishErr = down
	err := fills.Publish(t.Context(), fill{"ETHUSDT", 1})
	assert.ErrorIs(t, err, down)
	assert.ErrorContains(t, err, "trade.filled")
	assert.EqualValues(t, 1, fills.Stats().Published, "a failed publish is not counted")
}

func TestTransportSettlesEachDelivery(t *testing.T) {
	f := &fakeTransport{}
	bus := newFakeBus(t, f)
	fills := eventbus.MustTopic[fill](bus, "trade.filled")
	letters := make(chan eventbus.DeadLetter, 2)
	_, err := eventbus.DeadLetters(bus).Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.DeadLetter]) error {
		letters <- ev.Payload
		return nil
	})
	require.NoError(t, err)
	_, err = fills.Subscribe(func(_ context.Context, ev eventbus.Event[fill]) error {
		if ev.Payload.Qty < 0 {
			return errors.New("negative quantity")
		}
		return nil
	}, eventbus.Retry(2, func(int) time.Duration { return 5 * time.Millisecond }))
	require.NoError(t, err)
	require.Len(t, f.receivers, 2)
	assert.Equal(t, eventbus.SubscribeOptions{Topic: "trade.filled", MaxInFlight: 1, AckWait: eventbus.DefaultAckWait},
		f.receivers[1].opts, "an unnamed subscription asks for an ephemeral consumer")

	require.NoError(t, fills.Publish(t.Context(), fill{"BTCUSDT", 1}))
	require.NoError(t, fills.Publish(t.Context(), fill{"BTCUSDT", -1}))
	failed := receive(t, letters, 1)[0]
	require.NoError(t, f.Publish(t.Context(), &eventbus.Envelope{ // not a fill
		ID: failed.EventID, Topic: "trade.filled", Time: time.Now(), Data: []byte(`[1, 2]`),
	}))
	garbled := receive(t, letters, 1)[0]
	closeBus(t, bus)

	assert.Equal(t, 2, failed.Attempts)
	assert.Equal(t, "negative quantity", failed.Error)
	assert.Equal(t, 1, garbled.Attempts, "an event that does not decode is dead-lettered at once")
	assert.Contains(t, garbled.Error, "cannot decode")
	payload, err := json.Marshal(garbled.Payload)
	require.NoError(t, err)
	assert.JSONEq(t, `[1, 2]`, string(payload), "the dead letter carries the payload as it came")
	log := f.events()
	var settled []string // the fills' own, in the order of its one worker
	for _, l := range log {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "trade.filled" && f[0] != "publish" {
			settled = append(settled, l)
		}
	}
	// The retry runs in process, after its backoff, before the worker takes
	// the next message: the broker hears only the final reject of the
	// delivery, which keeps the order of a batch across retries.
	assert.Equal(t, []string{
		"ack trade.filled attempt 1",
		"reject trade.filled attempt 1",
		"reject trade.filled attempt 1",
	}, settled)
	assert.Less(t, slices.Index(log, "publish eventbus.dead_letter"), slices.Index(log, "reject trade.filled attempt 1"),
		"the dead letter is published before the reject: %q", log)
	assert.Equal(t, "close", log[len(log)-1], "the transport closes last")
}

func TestTransportCloseDrainsTheConsumersBeforeStoppingThem(t *testing.T) {
	t.Run("in order: drain, stop, close the transport", func(t *testing.T) {
		f := &fakeTransport{drain: func(context.Context) error { return nil }}
		bus := newFakeBus(t, f)
		_, err := eventbus.MustTopic[fill](bus, "trade.filled").Subscribe(func(context.Context, eventbus.Event[fill]) error { return nil })
		require.NoError(t, err)
		closeBus(t, bus)
		assert.Equal(t, []string{"drain", "stop", "close"}, f.events())
	})

	t.Run("gives up when ctx ends during the drain", func(t *testing.T) {
		f := &fakeTransport{drain: func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("fake drain: %w", ctx.Err())
		}}
		bus := newFakeBus(t, f)
		_, err := eventbus.MustTopic[fill](bus, "trade.filled").Subscribe(func(context.Context, eventbus.Event[fill]) error { return nil })
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err = bus.Close(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, []string{"drain", "stop"}, f.events(), "the consumer is stopped; the transport stays open until a Close succeeds")
		f.drain = func(context.Context) error { return nil }
		closeBus(t, bus)
		assert.Equal(t, []string{"drain", "stop", "close"}, f.events())
	})
}

func TestTransportPublishWaitIsUnsupported(t *testing.T) {
	f := &fakeTransport{}
	bus := newFakeBus(t, f)
	fills := eventbus.MustTopic[fill](bus, "trade.filled")
	err := fills.PublishWait(t.Context(), fill{"BTCUSDT", 1})
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Empty(t, f.published, "nothing is published")
	closeBus(t, bus)
	assert.ErrorIs(t, fills.PublishWait(t.Context(), fill{"BTCUSDT", 1}), eventbus.ErrClosed, "after Close")
}

// The typed layer checks a payload before either engine sees the event:
// an invalid one is a *ValidationError from Publish and PublishWait alike,
// in memory and over a transport, even after Close.
func TestAnInvalidPayloadIsAValidationErrorOnEitherEngine(t *testing.T) {
	for _, c := range []struct {
		name string
		bus  func(t *testing.T) *eventbus.Bus
	}{
		{"in memory", func(t *testing.T) *eventbus.Bus { return newBus(t) }},
		{"transport", func(t *testing.T) *eventbus.Bus { return newFakeBus(t, &fakeTransport{}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			bus := c.bus(t)
			policies := eventbus.MustTopic[eventbus.PolicyUpdated](bus, "policy.updated")
			var verr *eventbus.ValidationError
			assert.ErrorAs(t, policies.Publish(t.Context(), eventbus.PolicyUpdated{}), &verr, "Publish")
			closeBus(t, bus)
			assert.ErrorAs(t, policies.Publish(t.Context(), eventbus.PolicyUpdated{}), &verr, "Publish after Close")
			assert.ErrorAs(t, policies.PublishWait(t.Context(), eventbus.PolicyUpdated{}), &verr, "PublishWait after Close")
		})
	}
}

func TestTransportSubscribeThatFailsLeavesNoSubscription(t *testing.T) {
	t.Run("Subscribe", func(t *testing.T) {
		f := &fakeTransport{failTopic: "trade.filled"}
		bus := newFakeBus(t, f)
		fills := eventbus.MustTopic[fill](bus, "trade.filled")
		_, err := fills.Subscribe(func(context.Context, eventbus.Event[fill]) error { return nil })
		require.ErrorIs(t, err, errBroker)
		assert.Zero(t, bus.Stats().TotalHandlers)
		assert.Empty(t, fills.Stats().Subscriptions)
	})
	t.Run("SubscribeAll, failing on its second topic", func(t *testing.T) {
		f := &fakeTransport{failTopic: "trade.filled"}
		bus := newFakeBus(t, f)
		orders := eventbus.MustTopic[fill](bus, "trade.ordered")
		eventbus.MustTopic[fill](bus, "trade.filled")
		_, err := eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error { return nil })
		require.ErrorIs(t, err, errBroker)
		assert.Zero(t, bus.Stats().TotalHandlers)
		assert.Equal(t, []string{"stop"}, f.events(), "the receiver of its first topic is stopped")

		// A new topic gets no receiver for the failed subscription.
		eventbus.MustTopic[fill](bus, "trade.settled")
		require.NoError(t, orders.Publish(context.Background(), fill{Symbol: "BTCUSDT", Qty: 1}))
		assert.Zero(t, bus.Stats().Dispatched)
		f.mu.Lock()
		defer f.mu.Unlock()
		assert.Len(t, f.receivers, 1, "only the first topic's receiver was ever made")
	})
}

// A Retry backoff function that panics is recovered on a Transport too:
// the panic is logged and the broker redelivers at once, where it used to
// crash the process from the receiver's goroutine.
func TestTransportRecoversAPanicInTheRetryBackoff(t *testing.T) {
	f := &fakeTransport{}
	bus := newFakeBus(t, f)
	fills := eventbus.MustTopic[fill](bus, "trade.filled")
	calls := make(chan struct{}, 4)
	_, err := fills.Subscribe(func(context.Context, eventbus.Event[fill]) error {
		calls <- struct{}{}
		return errors.New("fail")
	}, eventbus.Retry(2, func(int) time.Duration { panic("backoff bug") }))
	require.NoError(t, err)
	require.NoError(t, fills.Publish(t.Context(), fill{"BTCUSDT", 1}))
	receive(t, calls, 2) // both attempts came
}

// asyncFake is a fakeTransport whose Publish returns before the broker
// stored the event, as natsbus.WithAsyncPublish does.
type asyncFake struct {
	*fakeTransport
	report func(*eventbus.Envelope, error)
}

func (a *asyncFake) OnPublishFailure(f func(*eventbus.Envelope, error)) { a.report = f }

func (a *asyncFake) Flush(context.Context) error {
	a.record("flush")
	return nil
}

func TestTransportPublishingAsynchronously(t *testing.T) {
	t.Run("reports a publish the broker did not store", func(t *testing.T) {
		f := &asyncFake{fakeTransport: &fakeTransport{}}
		reported := make(chan *eventbus.HandlerError, 1)
		bus, err := eventbus.New(eventbus.WithTransport(f), quiet,
			eventbus.WithErrorHandler(func(he *eventbus.HandlerError) { reported <- he }))
		require.NoError(t, err)
		require.NotNil(t, f.report, "New hands the transport the bus's report")
		env := &eventbus.Envelope{ID: eventbus.ID{1}, Topic: "trade.filled"}
		f.report(env, errors.New("stream full"))
		he := <-reported
		assert.Equal(t, "trade.filled", he.Topic)
		assert.Equal(t, env.ID, he.EventID)
		assert.Empty(t, he.Subscriber, "no subscriber: a publish failed")
		assert.ErrorContains(t, he, "the broker did not store trade.filled event")
		assert.ErrorContains(t, he, "stream full")
		assert.Equal(t, uint64(1), bus.Stats().PublishFailed)
		closeBus(t, bus)
	})

	t.Run("Close flushes the publishes before it drains the consumers", func(t *testing.T) {
		f := &asyncFake{fakeTransport: &fakeTransport{drain: func(context.Context) error { return nil }}}
		bus, err := eventbus.New(eventbus.WithTransport(f), quiet)
		require.NoError(t, err)
		_, err = eventbus.MustTopic[fill](bus, "trade.filled").Subscribe(func(context.Context, eventbus.Event[fill]) error { return nil })
		require.NoError(t, err)
		closeBus(t, bus)
		assert.Equal(t, []string{"flush", "drain", "stop", "close"}, f.events())
	})
}
