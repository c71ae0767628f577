package natsbus_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// BenchmarkVersusRaw runs nats bench's scenarios twice in one run: with
// nats.go's jetstream package directly, as nats bench does (async publish
// with a window, Consume with a batch of 500 and plain acks), and through
// eventbus over natsbus. Each natsbus line reports x-raw, its events/s over
// the raw line's just before it. The raw+msgid lines add a Nats-Msg-Id to
// every message, as natsbus does for de-duplication, to show what that
// costs the broker. One op is versusBatch events published
// (and, with subscribers, handled by each); file storage; the embedded
// server, or the one at $EVENTBUS_NATS_URL. Run it with a fixed count,
// e.g. -bench VersusRaw -benchtime 10x.
//
// The group lines run members of one group, each a bus on its own
// connection, on a handler that takes a millisecond; members=2 reports
// x-one-member. The sync lines publish with WithAsyncPublish off from 1
// and 16 goroutines; publishers=16 reports x-one-publisher.
func BenchmarkVersusRaw(b *testing.B) {
	raw := map[string]float64{} // scenario: events/s of its raw line
	for _, subs := range []int{0, 1, 4} {
		scenario := fmt.Sprintf("publish/async/subs=%d", subs)
		if subs > 0 {
			scenario = fmt.Sprintf("end-to-end/subs=%d", subs)
		}
		b.Run(scenario+"/raw", func(b *testing.B) {
			raw[scenario] = benchRaw(b, subs, false)
		})
		if subs == 0 {
			b.Run(scenario+"/raw+msgid", func(b *testing.B) {
				benchRaw(b, subs, true)
			})
		}
		b.Run(scenario+"/natsbus", func(b *testing.B) {
			rate := benchBus(b, subs, natsbus.WithAsyncPublish(versusWindow))
			if r := raw[scenario]; r > 0 {
				b.ReportMetric(rate/r, "x-raw")
			}
		})
	}
	var one float64
	for _, publishers := range []int{1, 16} {
		b.Run(fmt.Sprintf("publish/sync/publishers=%d/raw", publishers), func(b *testing.B) {
			benchRawSync(b, publishers, false)
		})
		b.Run(fmt.Sprintf("publish/sync/publishers=%d/raw+msgid", publishers), func(b *testing.B) {
			benchRawSync(b, publishers, true)
		})
		b.Run(fmt.Sprintf("publish/sync/publishers=%d/natsbus", publishers), func(b *testing.B) {
			rate := benchBusSync(b, publishers)
			if publishers == 1 {
				one = rate
			} else if one > 0 {
				b.ReportMetric(rate/one, "x-one-publisher")
			}
		})
	}
	var oneMember float64
	for _, members := range []int{1, 2} {
		b.Run(fmt.Sprintf("group/handler=1ms/members=%d/natsbus", members), func(b *testing.B) {
			rate := benchGroup(b, members)
			if members == 1 {
				oneMember = rate
			} else if oneMember > 0 {
				b.ReportMetric(rate/oneMember, "x-one-member")
			}
		})
	}
}

const (
	versusBatch  = 5000 // events per op
	versusWindow = 4096 // outstanding async publishes, raw and natsbus alike
)

// versusPayload is about 100 bytes of JSON, like a trade.
var versusPayload = benchTrade{Symbol: "BTCUSDT", Side: "BUY", Price: 42350.5, Quantity: 0.25, Strategy: "momentum-0001"}

// versusStream sets up the test's stream through natsbus, so that raw and
// natsbus lines use the same stream settings.
func versusStream(b *testing.B, srv *natstest.Server, opts ...natsbus.Option) (*nats.Conn, natstest.Names, eventbus.Transport) {
	b.Helper()
	nc := srv.Connect(b)
	names := srv.Names(b)
	tr, err := natsbus.New(nc, append(names.Options(), opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return nc, names, tr
}

// benchRaw is nats bench's js pub async and js consume, with subs
// consumers each getting every event, and returns events/s. With msgID,
// each message carries a Nats-Msg-Id, as natsbus's do: what the broker's
// de-duplication costs.
func benchRaw(b *testing.B, subs int, msgID bool) float64 {
	srv := natstest.Start(b)
	nc, names, tr := versusStream(b, srv)
	b.Cleanup(func() { _ = tr.Close(context.Background()) })
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(versusWindow))
	if err != nil {
		b.Fatal(err)
	}
	subject := names.SubjectPrefix + ".raw"
	counts := make([]*counter, subs)
	for i := range counts {
		counts[i] = newCounter()
		c, err := js.CreateConsumer(b.Context(), names.Stream, jetstream.ConsumerConfig{
			FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
			InactiveThreshold: time.Minute,
		})
		if err != nil {
			b.Fatal(err)
		}
		cc, err := c.Consume(func(msg jetstream.Msg) {
			_ = msg.Ack()
			counts[i].add()
		}, jetstream.PullMaxMessages(500))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(cc.Stop)
	}
	data := mustJSON(b, versusPayload)
	var n uint64
	b.ReportAllocs()
	for b.Loop() {
		for i := range versusBatch {
			opts := []jetstream.PublishOpt{jetstream.WithStallWait(time.Minute)}
			if msgID {
				opts = append(opts, jetstream.WithMsgID(strconv.FormatUint(n+uint64(i), 10)))
			}
			if _, err := js.PublishAsync(subject, data, opts...); err != nil {
				b.Fatal(err)
			}
		}
		n += versusBatch
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("publishes unacknowledged after a minute")
		}
		for _, c := range counts {
			c.waitFor(n)
		}
	}
	rate := float64(n) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	return rate
}

// benchBus is benchRaw through eventbus: subs subscriptions of their own.
func benchBus(b *testing.B, subs int, opts ...natsbus.Option) float64 {
	srv := natstest.Start(b)
	_, _, tr := versusStream(b, srv, opts...)
	bus := quietBus(b, tr)
	trades := eventbus.MustTopic[benchTrade](bus, "trade.executed")
	counts := subscribeCounters(b, trades, subs)
	ctx := context.Background()
	flusher := tr.(eventbus.AsyncPublisher)
	var n uint64
	b.ReportAllocs()
	for b.Loop() {
		for range versusBatch {
			if err := trades.Publish(ctx, versusPayload); err != nil {
				b.Fatal(err)
			}
		}
		n += versusBatch
		if err := flusher.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		for _, c := range counts {
			c.waitFor(n)
		}
	}
	if f := bus.Stats().PublishFailed; f > 0 {
		b.Fatalf("%d publishes failed", f)
	}
	rate := float64(n) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	return rate
}

// benchRawSync publishes with js.Publish, each call waiting for its ack,
// from publishers goroutines; with msgID, each message carries a
// Nats-Msg-Id, as natsbus's do, for the broker's de-duplication.
func benchRawSync(b *testing.B, publishers int, msgID bool) float64 {
	srv := natstest.Start(b)
	nc, names, tr := versusStream(b, srv)
	b.Cleanup(func() { _ = tr.Close(context.Background()) })
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	subject := names.SubjectPrefix + ".raw"
	data := mustJSON(b, versusPayload)
	var seq atomic.Uint64
	return spread(b, publishers, func(ctx context.Context) error {
		var opts []jetstream.PublishOpt
		if msgID {
			opts = append(opts, jetstream.WithMsgID(strconv.FormatUint(seq.Add(1), 10)))
		}
		_, err := js.Publish(ctx, subject, data, opts...)
		return err
	})
}

// benchBusSync publishes through eventbus in the synchronous mode from
// publishers goroutines.
func benchBusSync(b *testing.B, publishers int) float64 {
	srv := natstest.Start(b)
	_, _, tr := versusStream(b, srv)
	bus := quietBus(b, tr)
	trades := eventbus.MustTopic[benchTrade](bus, "trade.executed")
	return spread(b, publishers, func(ctx context.Context) error {
		return trades.Publish(ctx, versusPayload)
	})
}

// spread runs versusBatch/10 calls of publish per op, shared by
// publishers goroutines, and reports events/s.
func spread(b *testing.B, publishers int, publish func(context.Context) error) float64 {
	const perOp = versusBatch / 10
	ctx := context.Background()
	var n uint64
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for i := p; i < perOp; i += publishers {
					if err := publish(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		n += perOp
	}
	rate := float64(n) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	return rate
}

// benchGroup runs members buses, each on a connection of its own, in one
// group on a handler that takes a millisecond, fed by a bus publishing
// asynchronously.
func benchGroup(b *testing.B, members int) float64 {
	const perOp = 1000 // long enough that publishing an op's events and the last few handled weigh little
	srv := natstest.Start(b)
	_, names, tr := versusStream(b, srv, natsbus.WithAsyncPublish(versusWindow))
	producer := quietBus(b, tr)
	trades := eventbus.MustTopic[benchTrade](producer, "trade.executed")
	c := newCounter()
	for range members {
		mtr, err := natsbus.New(srv.Connect(b), names.Options()...)
		if err != nil {
			b.Fatal(err)
		}
		member := quietBus(b, mtr)
		if _, err := eventbus.MustTopic[benchTrade](member, "trade.executed").Subscribe(func(context.Context, eventbus.Event[benchTrade]) error {
			time.Sleep(time.Millisecond) // the handler's work
			c.add()
			return nil
		}, eventbus.Group("workers")); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var n uint64
	for b.Loop() {
		for range perOp {
			if err := trades.Publish(ctx, versusPayload); err != nil {
				b.Fatal(err)
			}
		}
		n += perOp
		c.waitFor(n)
	}
	rate := float64(n) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	return rate
}
