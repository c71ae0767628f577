package natsbus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestNew(t *testing.T) {
	t.Parallel()

	t.Run("creates the stream EVENTS on events.> by default", func(t *testing.T) {
		t.Parallel()
		// Embedded: the defaults must not touch a shared server's EVENTS.
		srv := natstest.StartEmbedded(t)
		nc := srv.Connect(t)
		tr, err := natsbus.New(nc)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, tr.Close(context.Background())) })

		info := streamInfo(t, nc, natsbus.DefaultStream)
		assert.Equal(t, "EVENTS", info.Config.Name)
		assert.Equal(t, []string{"events.>"}, info.Config.Subjects)
		assert.Equal(t, jetstream.LimitsPolicy, info.Config.Retention)
		assert.Equal(t, jetstream.FileStorage, info.Config.Storage)
		assert.Equal(t, time.Duration(0), info.Config.MaxAge)
		assert.Equal(t, natsbus.DefaultDuplicateWindow, info.Config.Duplicates)
	})

	t.Run("updates an existing stream to the options and keeps other settings", func(t *testing.T) {
		t.Parallel()
		nc, names := natstest.Connect(t)
		first, err := natsbus.New(nc, names.Options()...)
		require.NoError(t, err)
		require.NoError(t, first.Close(context.Background()))

		// An operator limits the stream's size; New must not undo that.
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		cfg := streamInfo(t, nc, names.Stream).Config
		cfg.MaxMsgs = 1000
		_, err = js.UpdateStream(context.Background(), cfg)
		require.NoError(t, err)

		second, err := natsbus.New(nc, append(names.Options(),
			natsbus.WithMaxAge(time.Hour), natsbus.WithDuplicateWindow(time.Minute))...)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, second.Close(context.Background())) })

		info := streamInfo(t, nc, names.Stream)
		assert.Equal(t, time.Hour, info.Config.MaxAge)
		assert.Equal(t, time.Minute, info.Config.Duplicates)
		assert.Equal(t, int64(1000), info.Config.MaxMsgs)
		assert.Equal(t, []string{names.SubjectPrefix + ".>"}, info.Config.Subjects)
	})

	t.Run("shortens the default duplicate window to a shorter max age", func(t *testing.T) {
		t.Parallel()
		nc, names := natstest.Connect(t)
		tr, err := natsbus.New(nc, append(names.Options(), natsbus.WithMaxAge(30*time.Second))...)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, tr.Close(context.Background())) })
		assert.Equal(t, 30*time.Second, streamInfo(t, nc, names.Stream).Config.Duplicates)
	})

	t.Run("refuses to change the storage of an existing stream", func(t *testing.T) {
		t.Parallel()
		nc, names := natstest.Connect(t)
		tr, err := natsbus.New(nc, names.Options()...)
		require.NoError(t, err)
		require.NoError(t, tr.Close(context.Background()))

		_, err = natsbus.New(nc, append(names.Options(), natsbus.WithStorage(jetstream.MemoryStorage))...)
		require.ErrorIs(t, err, eventbus.ErrInvalidOption)
		assert.ErrorContains(t, err, "storage")
		assert.ErrorContains(t, err, names.Stream)
	})

	t.Run("fails with the cause when the connection is closed", func(t *testing.T) {
		t.Parallel()
		nc, _ := natstest.Connect(t)
		nc.Close()
		_, err := natsbus.New(nc)
		require.ErrorIs(t, err, nats.ErrConnectionClosed)
		assert.ErrorContains(t, err, "stream EVENTS")
	})
}

func TestOptionsRejectInvalidValues(t *testing.T) {
	t.Parallel()
	nc, _ := natstest.Connect(t)
	tests := []struct {
		name string
		opt  natsbus.Option
		want string // in the message
	}{
		{"an empty stream name", natsbus.WithStream(""), "WithStream"},
		{"a stream name with a dot", natsbus.WithStream("EVENTS.v2"), "'.'"},
		{"a stream name with a space", natsbus.WithStream("MY EVENTS"), "' '"},
		{"a stream name with a wildcard", natsbus.WithStream("EVENTS*"), "'*'"},
		{"a stream name with '>'", natsbus.WithStream("EVENTS>"), "'>'"},
		{"a stream name with a slash", natsbus.WithStream("a/b"), "'/'"},
		{"a stream name over 255 bytes", natsbus.WithStream(strings.Repeat("E", 256)), "256"},
		{"an empty subject prefix", natsbus.WithSubjectPrefix(""), "WithSubjectPrefix"},
		{"a prefix with an empty token", natsbus.WithSubjectPrefix("events..x"), "empty"},
		{"a prefix ending in a dot", natsbus.WithSubjectPrefix("events."), "empty"},
		{"a prefix with '>'", natsbus.WithSubjectPrefix("events.>"), "'>'"},
		{"a prefix with '*'", natsbus.WithSubjectPrefix("events.*"), "'*'"},
		{"a prefix with a space", natsbus.WithSubjectPrefix("my events"), "' '"},
		{"an unknown storage", natsbus.WithStorage(jetstream.StorageType(7)), "WithStorage(7)"},
		{"a negative max age", natsbus.WithMaxAge(-time.Second), "WithMaxAge"},
		{"a max age under 100ms", natsbus.WithMaxAge(time.Millisecond), "100ms"},
		{"a zero duplicate window", natsbus.WithDuplicateWindow(0), "WithDuplicateWindow(0s)"},
		{"a negative duplicate window", natsbus.WithDuplicateWindow(-time.Minute), "WithDuplicateWindow"},
		{"a zero timeout", natsbus.WithTimeout(0), "WithTimeout(0s)"},
		{"a nil logger", natsbus.WithLogger(nil), "WithLogger(nil)"},
		{"a zero pull batch", natsbus.WithPullBatch(0), "WithPullBatch(0)"},
		{"a pull batch over 10000", natsbus.WithPullBatch(10001), "WithPullBatch(10001)"},
		{"an empty async window", natsbus.WithAsyncPublish(0), "WithAsyncPublish(0)"},
		{"an async window over 65536", natsbus.WithAsyncPublish(1<<16 + 1), "WithAsyncPublish(65537)"},
	}
	for _, tt := range tests {
		t.Run("New rejects "+tt.name, func(t *testing.T) {
			tr, err := natsbus.New(nc, tt.opt)
			assert.Nil(t, tr)
			require.ErrorIs(t, err, eventbus.ErrInvalidOption)
			assert.ErrorContains(t, err, tt.want)
		})
	}

	t.Run("New rejects a duplicate window longer than the max age", func(t *testing.T) {
		_, err := natsbus.New(nc, natsbus.WithMaxAge(time.Minute), natsbus.WithDuplicateWindow(2*time.Minute))
		require.ErrorIs(t, err, eventbus.ErrInvalidOption)
		assert.ErrorContains(t, err, "longer than WithMaxAge(1m0s)")
	})

	t.Run("New rejects a nil connection", func(t *testing.T) {
		_, err := natsbus.New(nil)
		require.ErrorIs(t, err, eventbus.ErrInvalidOption)
		assert.ErrorContains(t, err, "nil *nats.Conn")
	})
}

func TestPublish(t *testing.T) {
	t.Parallel()

	t.Run("round-trips every envelope field", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		want := &eventbus.Envelope{
			ID:    newID(),
			Topic: "trade.executed",
			Time:  time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC),
			Metadata: map[string]string{
				"correlation_id": "c-42",
				"traceparent":    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				"Mixed-Case":     "Value",
				"mixed-case":     "value",
				"with space":     "  leading and trailing  ",
				"colon:key":      "a: b",
				"newline":        "line1\r\nline2",
				"percent%41":     "100%41",
				"unicode ключ":   "значение ✓",
				"":               "empty key",
				"empty value":    "",
				"bytes\xff\x00":  "\x00\xfe\x7f",
			},
			Data: []byte(`{"order_id":"o-1","symbol":"BTCUSDT","side":"BUY"}`),
		}
		require.NoError(t, h.tr.Publish(h.ctx(), want))

		d := h.next(r)
		assert.Empty(t, cmp.Diff(want, d.Envelope()), "received envelope (-published +received)")
		assert.Equal(t, time.UTC, d.Envelope().Time.Location())
		assert.Equal(t, 1, d.Attempt())
		require.NoError(t, d.Ack(h.ctx()))
	})

	t.Run("writes the documented headers", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		env := &eventbus.Envelope{
			ID:       newID(),
			Topic:    "policy.updated",
			Time:     time.Date(2025, 3, 14, 16, 9, 26, 5, time.FixedZone("CET", 3600)),
			Metadata: map[string]string{"source": "msc ai", "trace/id": "x"},
			Data:     []byte(`{}`),
		}
		require.NoError(t, h.tr.Publish(h.ctx(), env))

		s, err := h.js.Stream(h.ctx(), h.names.Stream)
		require.NoError(t, err)
		raw, err := s.GetLastMsgForSubject(h.ctx(), h.subject("policy.updated"))
		require.NoError(t, err)
		assert.Equal(t, nats.Header{
			"Nats-Msg-Id":              {env.ID.String()},
			"Nats-Expected-Stream":     {h.names.Stream},
			"eventbus-type":            {"policy.updated"},
			"eventbus-time":            {"2025-03-14T15:09:26.000000005Z"},
			"eventbus-meta-source":     {"msc%20ai"},
			"eventbus-meta-trace%2Fid": {"x"},
		}, raw.Header)
	})

	t.Run("reads messages of other publishers leniently", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "opportunities.updated"})
		ack, err := h.js.Publish(h.ctx(), h.subject("opportunities.updated"), []byte("raw"))
		require.NoError(t, err)

		d := h.next(r)
		got := d.Envelope()
		assert.Equal(t, "opportunities.updated", got.Topic)
		assert.True(t, got.ID.IsZero(), "ID of a message without Nats-Msg-Id")
		assert.Nil(t, got.Metadata)
		assert.Equal(t, []byte("raw"), got.Data)
		s, err := h.js.Stream(h.ctx(), h.names.Stream)
		require.NoError(t, err)
		stored, err := s.GetMsg(h.ctx(), ack.Sequence)
		require.NoError(t, err)
		assert.True(t, stored.Time.Equal(got.Time), "time %v, stored at %v", got.Time, stored.Time)
		require.NoError(t, d.Ack(h.ctx()))
	})

	t.Run("stores an event published twice once", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "model.promoted"})
		env := newEnvelope("model.promoted", `{"model":"m1"}`)
		require.NoError(t, h.tr.Publish(h.ctx(), env))
		require.NoError(t, h.tr.Publish(h.ctx(), env), "the second publish is acknowledged")
		later := h.publish("model.promoted", `{"model":"m2"}`)[0]

		for _, want := range []eventbus.ID{env.ID, later.ID} {
			d := h.next(r)
			assert.Equal(t, want, d.Envelope().ID, "the duplicate would come before the later event")
			require.NoError(t, d.Ack(h.ctx()))
		}
		assert.Equal(t, uint64(2), streamInfo(t, h.nc, h.names.Stream).State.Msgs)
	})

	t.Run("rejects what it cannot publish", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		for _, topic := range []string{"", "a..b", "a.*", "a.>", "trade executed", "trade.", strings.Repeat("x", 256)} {
			err := h.tr.Publish(h.ctx(), newEnvelope(topic, "{}"))
			assert.ErrorIs(t, err, eventbus.ErrInvalidTopic, "topic %q", topic)
		}
		zero := newEnvelope("trade.executed", "{}")
		zero.ID = eventbus.ID{}
		assert.ErrorContains(t, h.tr.Publish(h.ctx(), zero), "zero ID")
		assert.ErrorContains(t, h.tr.Publish(h.ctx(), nil), "nil envelope")
	})

	t.Run("names the subject when the connection is closed", func(t *testing.T) {
		t.Parallel()
		nc, names := natstest.Connect(t)
		tr, err := natsbus.New(nc, names.Options()...)
		require.NoError(t, err)
		nc.Close()
		err = tr.Publish(context.Background(), newEnvelope("health.status_changed", "{}"))
		require.ErrorIs(t, err, nats.ErrConnectionClosed)
		assert.ErrorContains(t, err, names.SubjectPrefix+".health.status_changed")
		assert.ErrorContains(t, err, "CLOSED")
	})
}

func TestClose(t *testing.T) {
	t.Parallel()

	t.Run("makes Publish and Subscribe fail with ErrClosed", func(t *testing.T) {
		t.Parallel()
		nc, names := natstest.Connect(t)
		tr, err := natsbus.New(nc, names.Options()...)
		require.NoError(t, err)
		require.NoError(t, tr.Close(context.Background()))
		require.NoError(t, tr.Close(context.Background()), "a second Close")

		err = tr.Publish(context.Background(), newEnvelope("trade.executed", "{}"))
		assert.ErrorIs(t, err, eventbus.ErrClosed)
		assert.ErrorContains(t, err, names.SubjectPrefix+".trade.executed")
		_, err = tr.Subscribe(context.Background(), eventbus.SubscribeOptions{Topic: "trade.executed"})
		assert.ErrorIs(t, err, eventbus.ErrClosed)
	})

	t.Run("stops receivers and deletes ephemeral consumers, even unsettled", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		ephemeral := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		durable := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger"})
		h.publish("trade.executed", "{}")
		unsettled := h.next(ephemeral)
		held := h.next(durable)
		require.Len(t, h.consumers(), 2)

		require.NoError(t, h.tr.Close(h.ctx()))

		for _, r := range []eventbus.Receiver{ephemeral, durable} {
			_, err := r.Next(h.ctx())
			assert.ErrorIs(t, err, eventbus.ErrClosed)
		}
		assert.Len(t, h.consumers(), 1, "the durable consumer stays")
		assert.NoError(t, held.Ack(h.ctx()), "a durable delivery can be settled after Close")
		// An ack is a plain publish: to a consumer that is gone it is lost,
		// harmlessly, and tells nothing.
		assert.NoError(t, unsettled.Ack(h.ctx()))
		assert.Len(t, h.consumers(), 1, "the ephemeral consumer is gone all the same")
	})
}

// TestCloseLeavesNoGoroutine runs alone (not in parallel), so that every
// goroutine it did not find at its start is one it started.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	srv := natstest.StartEmbedded(t)
	nc := srv.Connect(t)
	names := srv.Names(t)
	tr, err := natsbus.New(nc, names.Options()...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	// Receivers in every state: idle in Next, holding a delivery, stopped.
	var rs []eventbus.Receiver
	for _, opts := range []eventbus.SubscribeOptions{
		{Topic: "trade.executed"},
		{Topic: "trade.executed", Name: "ledger"},
		{Topic: "trade.executed", Group: "executors", MaxInFlight: 8},
		{Topic: "policy.updated", Replay: true},
	} {
		r, err := tr.Subscribe(ctx, opts)
		require.NoError(t, err)
		rs = append(rs, r)
	}
	require.NoError(t, tr.Publish(ctx, newEnvelope("trade.executed", "{}")))
	_, err = rs[1].Next(ctx)
	require.NoError(t, err)
	require.NoError(t, rs[3].Stop(ctx))
	blocked := make(chan error, 1)
	go func() {
		_, err := rs[3].Next(context.Background())
		blocked <- err
	}()
	assert.ErrorIs(t, receive(t, blocked, "Next of a stopped receiver to return"), eventbus.ErrClosed)
	idle := make(chan error, 1)
	go func() {
		_, err := rs[0].Next(context.Background())
		if err == nil {
			_, err = rs[0].Next(context.Background())
		}
		idle <- err
	}()

	require.NoError(t, tr.Close(ctx))
	assert.ErrorIs(t, receive(t, idle, "an idle Next to return at Close"), eventbus.ErrClosed)
	nc.Close()
	srv.Shutdown(t)
	goleak.VerifyNone(t, before)
}

func streamInfo(t *testing.T, nc *nats.Conn, name string) *jetstream.StreamInfo {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	s, err := js.Stream(ctx, name)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	return info
}
