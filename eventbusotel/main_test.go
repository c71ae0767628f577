package eventbusotel_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine outlives the tests. Run with
// $EVENTBUSOTEL_TEST_ROLE set, the binary is instead the consumer process
// of TestTraceCrossesProcesses.
func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(runRole(role))
	}
	goleak.VerifyTestMain(m)
}

// waitFor bounds every wait for a delivery or a span: a test that fails
// should fail, not hang, and -race on two cores is slow.
const waitFor = 15 * time.Second

// tracing is an SDK TracerProvider that records every span in memory, and
// lets a test wait until spans have ended.
type tracing struct {
	*sdktrace.TracerProvider
	rec     *tracetest.SpanRecorder
	mu      sync.Mutex
	changed chan struct{} // closed, and replaced, when a span ends
}

func newTracing() *tracing {
	tr := &tracing{rec: tracetest.NewSpanRecorder(), changed: make(chan struct{})}
	// Processors run in order: the recorder holds a span before the
	// notifier tells anyone it ended.
	tr.TracerProvider = sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(tr.rec),
		sdktrace.WithSpanProcessor(notifier{tr}),
	)
	return tr
}

// newTestTracing is newTracing, shut down when the test ends.
func newTestTracing(t *testing.T) *tracing {
	tr := newTracing()
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}

// waitEnded waits until n spans have ended, and returns them in the order
// they ended; it fails the test after waitFor.
func (tr *tracing) waitEnded(t *testing.T, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	spans, err := tr.awaitEnded(n, waitFor)
	require.NoError(t, err)
	return spans
}

func (tr *tracing) awaitEnded(n int, limit time.Duration) ([]sdktrace.ReadOnlySpan, error) {
	timeout := time.After(limit)
	for {
		tr.mu.Lock()
		changed := tr.changed
		tr.mu.Unlock()
		if spans := tr.rec.Ended(); len(spans) >= n {
			return spans, nil
		}
		select {
		case <-changed:
		case <-timeout:
			return nil, fmt.Errorf("timed out after %v waiting for spans to end: %d of %d", limit, len(tr.rec.Ended()), n)
		}
	}
}

// notifier is the span processor that wakes waitEnded.
type notifier struct{ tr *tracing }

func (n notifier) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (n notifier) Shutdown(context.Context) error                  { return nil }
func (n notifier) ForceFlush(context.Context) error                { return nil }
func (n notifier) OnEnd(sdktrace.ReadOnlySpan) {
	n.tr.mu.Lock()
	close(n.tr.changed)
	n.tr.changed = make(chan struct{})
	n.tr.mu.Unlock()
}

// named returns the one span called name; it fails the test if there is
// not exactly one.
func named(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %q", name)
	return found[0]
}

// attrs returns a span's attributes as strings by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := make(map[attribute.Key]string)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.String()
	}
	return m
}
