package natsbus_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// publishToAGoneBroker publishes one event with WithAsyncPublish(4) to an
// embedded broker that has just shut down, and returns the transport, its
// connection, the event and where its failure will be reported.
func publishToAGoneBroker(t *testing.T) (eventbus.Transport, *nats.Conn, *eventbus.Envelope, failures) {
	t.Helper()
	srv := natstest.StartEmbedded(t)
	nc := srv.Connect(t)
	tr, err := natsbus.New(nc, append(srv.Names(t).Options(), natsbus.WithAsyncPublish(4))...)
	require.NoError(t, err)
	fails := make(failures, 1)
	asyncOf(t, tr).OnPublishFailure(fails.report)
	srv.Shutdown(t)
	env := newEnvelope("trade.executed", "{}")
	require.NoError(t, tr.Publish(t.Context(), env))
	return tr, nc, env, fails
}

// failures collects what a transport reports through OnPublishFailure.
type failures chan failure

type failure struct {
	env *eventbus.Envelope
	err error
}

func (f failures) report(env *eventbus.Envelope, err error) { f <- failure{env, err} }

// next returns the next failure reported, failing the test after waitFor.
func (f failures) next(t *testing.T) failure {
	t.Helper()
	select {
	case got := <-f:
		return got
	case <-time.After(waitFor):
		t.Fatal("no failure was reported")
		return failure{}
	}
}

func asyncOf(t *testing.T, tr eventbus.Transport) eventbus.AsyncPublisher {
	t.Helper()
	ap, ok := tr.(eventbus.AsyncPublisher)
	require.True(t, ok, "the transport implements eventbus.AsyncPublisher")
	return ap
}

func TestAsyncPublish(t *testing.T) {
	t.Parallel()

	t.Run("stores every event in order and Flush waits for the acknowledgements", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, natsbus.WithAsyncPublish(8))
		fails := make(failures, 1)
		asyncOf(t, h.tr).OnPublishFailure(fails.report)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		envs := h.publish("trade.executed", payloads(50)...)
		require.NoError(t, asyncOf(t, h.tr).Flush(h.ctx()))
		for _, want := range envs {
			d := h.next(r)
			assert.Equal(t, want.ID, d.Envelope().ID)
			require.NoError(t, d.Ack(h.ctx()))
		}
		assert.Empty(t, fails)
	})

	t.Run("waits for room in a full window until ctx ends, then resends what a broker restart lost", func(t *testing.T) {
		t.Parallel()
		srv := natstest.StartEmbedded(t)
		h := startHarness(t, srv.Connect(t), srv.Names(t), natsbus.WithAsyncPublish(1))
		fails := make(failures, 1)
		asyncOf(t, h.tr).OnPublishFailure(fails.report)
		srv.Shutdown(t)
		first := newEnvelope("trade.executed", "1")
		require.NoError(t, h.tr.Publish(h.ctx(), first), "queued while the broker is away")

		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := h.tr.Publish(short, newEnvelope("trade.executed", "2"))
		assert.ErrorIs(t, err, context.DeadlineExceeded, "the window of 1 is full")
		assert.ErrorContains(t, err, "waiting for room among 1 unacknowledged publishes")

		srv.Restart(t)
		require.NoError(t, asyncOf(t, h.tr).Flush(h.ctx()))
		assert.Empty(t, fails, "the event was stored once the broker was back")
		s, err := h.js.Stream(h.ctx(), h.names.Stream)
		require.NoError(t, err)
		msg, err := s.GetLastMsgForSubject(h.ctx(), h.subject("trade.executed"))
		require.NoError(t, err)
		assert.Equal(t, first.ID.String(), msg.Header.Get("Nats-Msg-Id"))
		assert.Equal(t, uint64(1), msg.Sequence, "stored once")
	})

	t.Run("reports an event the broker refused, through the bus", func(t *testing.T) {
		t.Parallel()
		nc, names := natstest.Connect(t)
		tr, err := natsbus.New(nc, append(names.Options(), natsbus.WithAsyncPublish(4))...)
		require.NoError(t, err)
		// An operator's limit: the stream takes one message and refuses more.
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		s, err := js.Stream(t.Context(), names.Stream)
		require.NoError(t, err)
		cfg := s.CachedInfo().Config
		cfg.MaxMsgs, cfg.Discard = 1, jetstream.DiscardNew
		_, err = js.UpdateStream(t.Context(), cfg)
		require.NoError(t, err)

		reported := make(chan *eventbus.HandlerError, 2)
		bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(slog.New(slog.DiscardHandler)),
			eventbus.WithErrorHandler(func(he *eventbus.HandlerError) { reported <- he }))
		require.NoError(t, err)
		trades := eventbus.MustTopic[string](bus, "trade.executed")
		require.NoError(t, trades.Publish(t.Context(), "stored"))
		require.NoError(t, trades.Publish(t.Context(), "refused"), "accepted: the broker answers later")
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		require.NoError(t, bus.Close(ctx), "Close waits for the answer")

		require.Len(t, reported, 1)
		he := <-reported
		assert.Equal(t, "trade.executed", he.Topic)
		assert.Empty(t, he.Subscriber)
		assert.ErrorContains(t, he, "sent 1 times", "a refusal is not sent again")
		assert.ErrorContains(t, he, "maximum messages")
		assert.Equal(t, uint64(1), bus.Stats().PublishFailed)
		assert.Equal(t, uint64(2), bus.Stats().Published)
	})

	t.Run("reports an event never acknowledged after its resends, when the broker is gone", func(t *testing.T) {
		t.Parallel()
		srv := natstest.StartEmbedded(t)
		h := startHarness(t, srv.Connect(t), srv.Names(t), natsbus.WithAsyncPublish(4), natsbus.WithTimeout(100*time.Millisecond))
		fails := make(failures, 1)
		asyncOf(t, h.tr).OnPublishFailure(fails.report)
		srv.Shutdown(t)
		env := newEnvelope("trade.executed", "{}")
		require.NoError(t, h.tr.Publish(h.ctx(), env))
		got := fails.next(t)
		assert.Equal(t, env.ID, got.env.ID)
		assert.ErrorIs(t, got.err, jetstream.ErrAsyncPublishTimeout)
		assert.ErrorContains(t, got.err, "sent 4 times")
		require.NoError(t, asyncOf(t, h.tr).Flush(h.ctx()), "reported is settled")
	})

	t.Run("Close reports what is still unacknowledged when its ctx ends", func(t *testing.T) {
		t.Parallel()
		tr, _, env, fails := publishToAGoneBroker(t)

		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := tr.Close(short)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		got := fails.next(t)
		assert.Equal(t, env.ID, got.env.ID)
		assert.ErrorContains(t, got.err, "Close gave up")
		assert.ErrorIs(t, tr.Publish(t.Context(), newEnvelope("trade.executed", "{}")), eventbus.ErrClosed)
	})

	t.Run("reports what is outstanding when the connection closes", func(t *testing.T) {
		t.Parallel()
		tr, nc, env, fails := publishToAGoneBroker(t)
		nc.Close()
		got := fails.next(t)
		assert.Equal(t, env.ID, got.env.ID)
		assert.ErrorIs(t, got.err, nats.ErrConnectionClosed)
		require.NoError(t, tr.Close(t.Context()), "nothing is left outstanding")
	})

	t.Run("fails at once on a closed connection", func(t *testing.T) {
		t.Parallel()
		nc, names := natstest.Connect(t)
		tr, err := natsbus.New(nc, append(names.Options(), natsbus.WithAsyncPublish(4))...)
		require.NoError(t, err)
		nc.Close()
		err = tr.Publish(t.Context(), newEnvelope("trade.executed", "{}"))
		assert.Error(t, err)
		require.NoError(t, asyncOf(t, tr).Flush(t.Context()), "nothing is outstanding")
		require.NoError(t, tr.Close(t.Context()))
	})
}
