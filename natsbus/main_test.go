package natsbus_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every
// receiver's pulling goroutine must have been stopped by Stop or Close.
// Run with $NATSBUS_TEST_ROLE set, the binary is instead one of the
// processes of TestGroupSurvivesAConsumerKilledMidStream.
func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(runRole(role))
	}
	goleak.VerifyTestMain(m)
}

// waitFor bounds every wait for a delivery; generous, because a test
// that fails should fail, not hang, and -race on two cores is slow.
const waitFor = 15 * time.Second

// receive returns what ch yields, failing the test if nothing comes
// within waitFor: a test that fails should say so, not hang until the test
// binary's timeout. Goroutines sending on ch should not block (a buffer of
// one for a single value), so that none outlives a test that gave up.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("waited %v for %s", waitFor, what)
		panic("unreachable: Fatalf ends the test's goroutine")
	}
}

// harness is one transport on a test's own stream, with what the tests
// need to look behind it.
type harness struct {
	t     *testing.T
	nc    *nats.Conn
	names natstest.Names
	tr    eventbus.Transport
	js    jetstream.JetStream
}

// newHarness connects to the test's server and makes a transport on the
// test's own stream, closed when the test ends.
func newHarness(t *testing.T, opts ...natsbus.Option) *harness {
	t.Helper()
	nc, names := natstest.Connect(t)
	return startHarness(t, nc, names, opts...)
}

func startHarness(t *testing.T, nc *nats.Conn, names natstest.Names, opts ...natsbus.Option) *harness {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	tr, err := natsbus.New(nc, append(append(names.Options(), natsbus.WithLogger(logger)), opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		assert.NoError(t, tr.Close(ctx), "Close")
	})
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return &harness{t: t, nc: nc, names: names, tr: tr, js: js}
}

// sibling is another process on the same stream: its own connection and
// transport.
func (h *harness) sibling(srv *natstest.Server) *harness {
	h.t.Helper()
	return startHarness(h.t, srv.Connect(h.t), h.names)
}

// subscribe starts a receiver, stopped when the test ends.
func (h *harness) subscribe(opts eventbus.SubscribeOptions) eventbus.Receiver {
	h.t.Helper()
	r, err := h.tr.Subscribe(h.ctx(), opts)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

// publish publishes one envelope per payload on topic and returns them.
func (h *harness) publish(topic string, payloads ...string) []*eventbus.Envelope {
	h.t.Helper()
	envs := make([]*eventbus.Envelope, len(payloads))
	for i, p := range payloads {
		envs[i] = newEnvelope(topic, p)
		require.NoError(h.t, h.tr.Publish(h.ctx(), envs[i]))
	}
	return envs
}

// next returns the receiver's next delivery, failing the test after waitFor.
func (h *harness) next(r eventbus.Receiver) eventbus.Delivery {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d, err := r.Next(ctx)
	require.NoError(h.t, err, "Next")
	return d
}

// ctx is a context for one broker call of the test.
func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	h.t.Cleanup(cancel)
	return ctx
}

// consumers lists the consumers of the test's stream by name.
func (h *harness) consumers() []string {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx(), h.names.Stream)
	require.NoError(h.t, err)
	names := []string{}
	lister := s.ConsumerNames(h.ctx())
	for n := range lister.Name() {
		names = append(names, n)
	}
	require.NoError(h.t, lister.Err())
	return names
}

// consumer returns the info of the stream's only consumer.
func (h *harness) consumer() *jetstream.ConsumerInfo {
	h.t.Helper()
	names := h.consumers()
	require.Len(h.t, names, 1, "consumers")
	c, err := h.js.Consumer(h.ctx(), h.names.Stream, names[0])
	require.NoError(h.t, err)
	info, err := c.Info(h.ctx())
	require.NoError(h.t, err)
	return info
}

// subject is where an event of topic travels.
func (h *harness) subject(topic string) string {
	return h.names.SubjectPrefix + "." + topic
}

func newEnvelope(topic, payload string) *eventbus.Envelope {
	return &eventbus.Envelope{ID: newID(), Topic: topic, Time: time.Now().UTC(), Data: []byte(payload)}
}

func newID() eventbus.ID {
	var id eventbus.ID
	_, _ = rand.Read(id[:])
	return id
}

// ids lists the IDs of envs.
func ids(envs []*eventbus.Envelope) []eventbus.ID {
	out := make([]eventbus.ID, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

// payloads returns n distinct payloads.
func payloads(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"n":%d}`, i)
	}
	return out
}
