package natsbus_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// BenchmarkPublish measures Publish of a 128-byte event with one metadata
// entry, each call waiting for the stream's acknowledgement, one at a time.
func BenchmarkPublish(b *testing.B) {
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
