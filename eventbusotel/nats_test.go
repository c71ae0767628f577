package eventbusotel_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbusotel"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// newNATSBus returns a bus on a natsbus transport over nc, on the stream
// and subjects of names, closed when the test ends.
func newNATSBus(t *testing.T, nc *nats.Conn, names natstest.Names) *eventbus.Bus {
	t.Helper()
	tr, err := natsbus.New(nc, names.Options()...)
	require.NoError(t, err)
	bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		assert.NoError(t, bus.Close(ctx))
	})
	return bus
}

// TestTraceCrossesNATS publishes through JetStream (the embedded server,
// or the one at $EVENTBUS_NATS_URL) to a handler of another bus, and
// checks that the consumer span is the child of the producer span and the
// caller's metadata went along.
func TestTraceCrossesNATS(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	names := srv.Names(t)
	producer, consumer := newNATSBus(t, srv.Connect(t), names), newNATSBus(t, srv.Connect(t), names)
	tp := newTestTracing(t)
	calls := subscribeAudit(t, eventbus.MustTopic[order](consumer, topicName), eventbusotel.WithTracerProvider(tp))

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ctx, request := tp.Tracer("test").Start(ctx, "request")
	ev := eventbus.Event[order]{Payload: order{N: 1}, Metadata: map[string]string{"correlation_id": "c-1"}}
	require.NoError(t, eventbusotel.PublishEvent(ctx, eventbus.MustTopic[order](producer, topicName), ev, eventbusotel.WithTracerProvider(tp)))
	request.End()

	var got seen
	select {
	case got = <-calls:
	case <-ctx.Done():
		t.Fatal("the event was not handled")
	}
	spans := tp.waitEnded(t, 3)
	pub, proc := named(t, spans, "publish orders"), named(t, spans, "process orders")
	assert.Equal(t, named(t, spans, "request").SpanContext().SpanID(), pub.Parent().SpanID())
	assert.Equal(t, pub.SpanContext().TraceID(), proc.SpanContext().TraceID())
	assert.Equal(t, pub.SpanContext().SpanID(), proc.Parent().SpanID())
	assert.True(t, proc.Parent().IsRemote())
	assert.Equal(t, proc.SpanContext(), got.span)
	assert.Equal(t, wantAttrs(got.ev.ID, "publish", "send"), attrs(pub))
	assert.Equal(t, wantAttrs(got.ev.ID, "process", "process"), attrs(proc))
	assert.Equal(t, "c-1", got.ev.Metadata["correlation_id"])
}

// The consumer process of TestTraceCrossesProcesses is this test binary
// run again, with the environment saying where to consume.
const (
	envRole   = "EVENTBUSOTEL_TEST_ROLE" // "consumer"
	envURL    = "EVENTBUSOTEL_TEST_URL"
	envStream = "EVENTBUSOTEL_TEST_STREAM"
	envPrefix = "EVENTBUSOTEL_TEST_PREFIX"
)

// runRole plays the role named by $EVENTBUSOTEL_TEST_ROLE and returns the
// exit status. The consumer subscribes a wrapped handler, prints "ready",
// and when its consumer span of one event has ended prints
// "consumed <trace ID> <parent span ID> <event ID> <span name>", closes its
// bus and exits.
func runRole(role string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fail := func(err error) int {
		logger.Error("eventbusotel test process failed", "role", role, "err", err)
		return 1
	}
	if role != "consumer" {
		return fail(fmt.Errorf("unknown role %q", role))
	}
	nc, err := nats.Connect(os.Getenv(envURL))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	tr, err := natsbus.New(nc, natsbus.WithStream(os.Getenv(envStream)), natsbus.WithSubjectPrefix(os.Getenv(envPrefix)))
	if err != nil {
		return fail(err)
	}
	bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(logger))
	if err != nil {
		return fail(err)
	}
	tp := newTracing()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	_, err = eventbus.MustTopic[order](bus, topicName).Subscribe(eventbusotel.Handler(func(context.Context, eventbus.Event[order]) error {
		return nil
	}, eventbusotel.WithTracerProvider(tp)), eventbus.Name("consumer"))
	if err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	spans, err := tp.awaitEnded(1, waitFor)
	if err != nil {
		return fail(err)
	}
	s := spans[0]
	fmt.Printf("consumed %s %s %s %s\n", s.SpanContext().TraceID(), s.Parent().SpanID(), attrs(s)["messaging.message.id"], s.Name())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := bus.Close(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// TestTraceCrossesProcesses publishes in this process, inside a span, to
// a handler in a child process over NATS, and checks that the child's
// consumer span is in this trace with the producer span as its parent.
func TestTraceCrossesProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	t.Parallel()
	srv := natstest.Start(t)
	names := srv.Names(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=consumer", envURL+"="+srv.URL(),
		envStream+"="+names.Stream, envPrefix+"="+names.SubjectPrefix)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("stderr of the consumer:\n%s", stderr.String())
		}
	})
	lines := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		for range lines { // let the reader finish if the test stopped reading
		}
		<-done
	})
	timeout := time.After(2 * waitFor)
	next := func(what string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			require.True(t, ok, "the consumer exited before printing %s", what)
			return l
		case <-timeout:
			t.Fatalf("timed out waiting for the consumer to print %s", what)
			return ""
		}
	}

	require.Equal(t, "ready", next("ready"))
	tp := newTestTracing(t)
	bus := newNATSBus(t, srv.Connect(t), names)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, eventbusotel.Publish(ctx, eventbus.MustTopic[order](bus, topicName), order{N: 1}, eventbusotel.WithTracerProvider(tp)))
	pub := named(t, tp.waitEnded(t, 1), "publish orders")

	fields := strings.SplitN(next("consumed"), " ", 5)
	require.Len(t, fields, 5)
	assert.Equal(t, "consumed", fields[0])
	assert.Equal(t, pub.SpanContext().TraceID().String(), fields[1], "the consumer's trace is the producer's")
	assert.Equal(t, pub.SpanContext().SpanID().String(), fields[2], "the consumer span's parent is the producer span")
	assert.Equal(t, attrs(pub)["messaging.message.id"], fields[3], "the same event")
	assert.Equal(t, "process orders", fields[4])
	_, ok := <-lines
	assert.False(t, ok, "nothing more printed")
	require.NoError(t, cmd.Wait(), "the consumer exits cleanly")
}
