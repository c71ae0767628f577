package eventbus_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// logWatch is a slog.Handler that keeps every record and signals when one
// has the watched message.
type logWatch struct {
	mu      sync.Mutex
	records []slog.Record
	message string
	seen    chan struct{}
}

func newLogWatch(message string) *logWatch {
	return &logWatch{message: message, seen: make(chan struct{}, 100)}
}

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logWatch) WithGroup(string) slog.Handler            { return l }

func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.records = append(l.records, r.Clone())
	l.mu.Unlock()
	if r.Message == l.message {
		l.seen <- struct{}{}
	}
	return nil
}

// matching returns the attributes of every record with the watched message.
func (l *logWatch) matching() []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.records {
		if r.Message != l.message {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, attrs)
	}
	return out
}

func TestStalledHandlerIsLoggedOnceWithWhereItSubscribed(t *testing.T) {
	const timeout = 20 * time.Millisecond
	logs := newLogWatch("eventbus: handler stalled")
	bus := newBus(t, eventbus.WithLogger(slog.New(logs)), eventbus.WithStallTimeout(timeout))
	topic := eventbus.MustTopic[int](bus, "t")
	release := make(chan struct{})
	_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		<-release
		return nil
	}, eventbus.Name("slow-risk-check"))
	require.NoError(t, err)

	require.NoError(t, topic.Publish(context.Background(), 1))
	select {
	case <-logs.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the stall was never logged")
	}
	time.Sleep(10 * timeout) // many more watcher passes: none may log it again
	close(release)
	closeBus(t, bus)

	got := logs.matching()
	require.Len(t, got, 1, "logged once")
	assert.Equal(t, "slow-risk-check", got[0]["subscriber"])
	assert.Equal(t, "t", got[0]["topic"])
	assert.Contains(t, got[0]["subscribed_at"], "stall_test.go:")
}

func TestQuickHandlersAreNotReportedAsStalled(t *testing.T) {
	// In a synctest bubble the clock moves only while every goroutine is
	// blocked, so a handler takes exactly its sleep and the watcher's
	// passes come exactly on time: on a loaded machine a descheduled
	// quick handler cannot pass for a stalled one. The handlers are quick
	// but not instant (3/5 of the timeout each, back to back for 10 of
	// them), and then the worker sits parked for many timeouts: neither
	// is a stall.
	const timeout = 50 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		logs := newLogWatch("eventbus: handler stalled")
		bus := newBus(t, eventbus.WithLogger(slog.New(logs)), eventbus.WithStallTimeout(timeout))
		topic := eventbus.MustTopic[int](bus, "t")
		var calls atomic.Int64
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
			calls.Add(1)
			time.Sleep(timeout * 3 / 5)
			return nil
		})
		require.NoError(t, err)
		for n := range 10 {
			require.NoError(t, topic.Publish(context.Background(), n))
		}
		time.Sleep(20 * timeout) // the handlers' 6 timeouts of work, then the worker parked
		require.EqualValues(t, 10, calls.Load(), "the handlers are done")
		closeBus(t, bus)
		assert.Empty(t, logs.matching())
	})
}

func TestPublisherBlockedOnAFullBufferIsLogged(t *testing.T) {
	logs := newLogWatch("eventbus: publisher stalled on a full buffer")
	bus := newBus(t, eventbus.WithLogger(slog.New(logs)), eventbus.WithStallTimeout(20*time.Millisecond))
	topic := eventbus.MustTopic[int](bus, "t")
	release := make(chan struct{})
	_, err := topic.Subscribe(func(context.Context, eventbus.Event[int]) error {
		<-release
		return nil
	}, eventbus.Queue(1), eventbus.Name("ledger"))
	require.NoError(t, err)
	require.NoError(t, topic.Publish(context.Background(), 1)) // in the handler
	require.NoError(t, topic.Publish(context.Background(), 2)) // fills the buffer

	published := make(chan error)
	go func() { published <- topic.Publish(context.Background(), 3) }()
	select {
	case <-logs.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked publisher was never logged")
	}
	close(release)
	require.NoError(t, <-published)

	got := logs.matching()
	require.Len(t, got, 1)
	assert.Equal(t, "ledger", got[0]["subscriber"])
	assert.True(t, strings.Contains(got[0]["subscribed_at"], "stall_test.go:"))
}

func TestWithStallTimeoutMustBePositive(t *testing.T) {
	_, err := eventbus.New(eventbus.WithStallTimeout(0))
	assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
}
