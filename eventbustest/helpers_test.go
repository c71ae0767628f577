package eventbustest_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

const timeout = 10 * time.Second

// fakeTB is a testing.TB that records failures instead of failing, so that
// a test can check that a helper fails when it should and says why. Unlike
// the real Fatalf, its Fatalf returns; the helpers return right after it.
// Everything else (Helper, Cleanup, Context, Logf) goes to the real test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	failures []string
}

func (f *fakeTB) fail(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, msg)
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fail("Fatalf: " + fmt.Sprintf(format, args...))
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.fail("Errorf: " + fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatal(args ...any) { f.fail("Fatal: " + fmt.Sprint(args...)) }
func (f *fakeTB) Error(args ...any) { f.fail("Error: " + fmt.Sprint(args...)) }
func (f *fakeTB) FailNow()          { f.fail("FailNow") }
func (f *fakeTB) Fail()             { f.fail("Fail") }

func (f *fakeTB) Failures() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.failures...)
}

// newBus returns an in-memory bus that is closed when the test ends.
func newBus(t *testing.T) *eventbus.Bus {
	t.Helper()
	bus := newMemoryBus(t)
	t.Cleanup(func() { closeBus(t, bus) })
	return bus
}

func closeBus(t *testing.T, bus *eventbus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	require.NoError(t, bus.Close(ctx))
}

func publish[T any](t *testing.T, tp *eventbus.Topic[T], payloads ...T) {
	t.Helper()
	for _, p := range payloads {
		require.NoError(t, tp.Publish(context.Background(), p))
	}
}

// newMemoryBus returns an in-memory bus with a quiet logger: some cases
// make handlers fail and panic on purpose.
func newMemoryBus(t *testing.T) *eventbus.Bus {
	bus, err := eventbus.New(eventbus.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	return bus
}
