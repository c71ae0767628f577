package natsbus_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// benchTrade is the payload of the typed benchmarks: about 100 bytes of
// JSON, like a trade of the trading system.
type benchTrade struct {
	Symbol   string  `json:"symbol"`
	Side     string  `json:"side"`
	Price    float64 `json:"price"`
	Quantity float64 `json:"quantity"`
	Seq      uint64  `json:"seq"`
	Strategy string  `json:"strategy_id"`
}

// batch is how many events one op of BenchmarkPublish publishes.
const batch = 100

// BenchmarkPublish measures the typed Publish over NATS JetStream on an
// embedded server, file storage. One op publishes a batch of 100 events,
// one Publish after the other, each returning once the stream stored the
// event; with subscribers, the op also waits until each has handled the
// whole batch (end to end: delivery, handler, double ack). events/s is
// what one publisher gets through.
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		subs, concurrency int
	}{
		{0, 1}, {1, 1}, {4, 1}, {1, 16},
	} {
		name := fmt.Sprintf("nats/subs=%d", bc.subs)
		if bc.concurrency > 1 {
			name += fmt.Sprintf("/concurrency=%d", bc.concurrency)
		}
		b.Run(name, func(b *testing.B) {
			nc, names := natstest.Connect(b)
			tr, err := natsbus.New(nc, names.Options()...)
			if err != nil {
				b.Fatal(err)
			}
			bus := quietBus(b, tr)
			trades := eventbus.MustTopic[benchTrade](bus, "trade.executed")
			counts := subscribeCounters(b, trades, bc.subs, eventbus.Concurrency(bc.concurrency))
			ctx := context.Background()
			tr0 := benchTrade{Symbol: "BTCUSDT", Side: "BUY", Price: 42350.5, Quantity: 0.25, Strategy: "momentum-0001"}
			var seq uint64
			b.ReportAllocs()
			for b.Loop() {
				for range batch {
					seq++
					tr0.Seq = seq
					if err := trades.Publish(ctx, tr0); err != nil {
						b.Fatal(err)
					}
				}
				for _, c := range counts {
					c.waitFor(seq)
				}
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// counter counts handler calls and lets the benchmark wait for a count
// without polling.
type counter struct {
	n       atomic.Uint64
	want    atomic.Uint64
	reached chan struct{}
}

// subscribeCounters subscribes n handlers to trades, each counting what
// it gets.
func subscribeCounters(b *testing.B, trades *eventbus.Topic[benchTrade], n int, opts ...eventbus.SubOption) []*counter {
	b.Helper()
	counts := make([]*counter, n)
	for i := range counts {
		c := newCounter()
		counts[i] = c
		if _, err := trades.Subscribe(func(context.Context, eventbus.Event[benchTrade]) error {
			c.add()
			return nil
		}, opts...); err != nil {
			b.Fatal(err)
		}
	}
	return counts
}

func newCounter() *counter { return &counter{reached: make(chan struct{}, 1)} }

func (c *counter) add() {
	if c.n.Add(1) >= c.want.Load() {
		select {
		case c.reached <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// waitFor returns once n calls were counted. One goroutine waits at a time.
func (c *counter) waitFor(n uint64) {
	c.want.Store(n)
	for c.n.Load() < n {
		<-c.reached // a stale wake-up only costs a look
	}
}

// BenchmarkTransportPublish measures the transport alone: Publish of a
// 128-byte envelope with one metadata entry, each call waiting for the
// stream's acknowledgement, one at a time.
func BenchmarkTransportPublish(b *testing.B) {
	for _, bc := range []struct {
		name    string
		storage jetstream.StorageType
	}{
		{"storage=file", jetstream.FileStorage},
		{"storage=memory", jetstream.MemoryStorage},
	} {
		b.Run(bc.name, func(b *testing.B) {
			nc, names := natstest.Connect(b)
			tr, err := natsbus.New(nc, append(names.Options(), natsbus.WithStorage(bc.storage))...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = tr.Close(context.Background()) })
			env := &eventbus.Envelope{
				Topic:    "trade.executed",
				Time:     time.Now().UTC(),
				Metadata: map[string]string{"source": "bench"},
				Data:     []byte(`{"symbol":"BTCUSDT","side":"BUY","payload":"` + strings.Repeat("x", 78) + `"}`),
			}
			_, _ = rand.Read(env.ID[:8])
			ctx := context.Background()
			var n uint64
			b.ReportAllocs()
			for b.Loop() {
				n++
				binary.BigEndian.PutUint64(env.ID[8:], n) // distinct IDs: no de-duplication
				if err := tr.Publish(ctx, env); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// quietBus is a bus on tr that logs nothing, closed when the benchmark
// ends.
func quietBus(b *testing.B, tr eventbus.Transport) *eventbus.Bus {
	b.Helper()
	bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := bus.Close(ctx); err != nil {
			b.Error(err)
		}
	})
	return bus
}
