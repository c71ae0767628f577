package eventbus_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quantumtrader/eventbus"
)

// tick is the benchmark payload: a market tick without pointers.
type tick struct {
	Symbol [8]byte
	Price  float64
	Qty    float64
	Seq    uint64
}

var btc = [8]byte{'B', 'T', 'C', 'U', 'S', 'D', 'T'}

func benchBus(b *testing.B, opts ...eventbus.Option) *eventbus.Bus {
	b.Helper()
	bus, err := eventbus.New(append([]eventbus.Option{quiet}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := bus.Close(context.Background()); err != nil {
			b.Error(err)
		}
	})
	return bus
}

// padded holds one subscriber's 8-byte count on a cache line of its own:
// handlers running on different cores would otherwise contend for one line
// on every event, a cost of the benchmark rather than of the bus or of the
// channels baseline.
type padded[T any] struct {
	n T
	_ [56]byte
}

// subscribeCounting subscribes n async handlers to topic that count what
// they receive, and returns a function that waits until each has counted
// want events.
func subscribeCounting(tb testing.TB, topic *eventbus.Topic[tick], n int) (wait func(want int64)) {
	counts := make([]padded[atomic.Int64], n)
	for i := range counts {
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[tick]) error {
			counts[i].n.Add(1)
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return func(want int64) {
		for i := range counts {
			for counts[i].n.Load() < want {
				time.Sleep(20 * time.Microsecond)
			}
		}
	}
}

func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	for _, subs := range []int{1, 10} {
		b.Run(fmt.Sprintf("sync/subs=%d", subs), func(b *testing.B) {
			topic := eventbus.MustTopic[tick](benchBus(b), "ticks")
			var sum float64
			for range subs {
				_, err := topic.Subscribe(func(_ context.Context, ev eventbus.Event[tick]) error {
					sum += ev.Payload.Price
					return nil
				}, eventbus.Sync())
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				seq++
				if err := topic.Publish(ctx, tick{Symbol: btc, Price: 1, Qty: 2, Seq: seq}); err != nil {
					b.Fatal(err)
				}
			}
			if want := float64(seq) * float64(subs); sum != want {
				b.Fatalf("handlers summed %v, want %v", sum, want)
			}
		})
	}
	// The last case has a queue smaller than a reader's run: the publisher
	// waits for room after every few events, and the reader must not wait
	// for more.
	for _, c := range []struct {
		name string
		subs int
		opts []eventbus.Option
	}{
		{"async/subs=1", 1, nil},
		{"async/subs=4", 4, nil},
		{"async/subs=1/queue=4", 1, []eventbus.Option{eventbus.WithQueueSize(4)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			topic := eventbus.MustTopic[tick](benchBus(b, c.opts...), "ticks")
			wait := subscribeCounting(b, topic, c.subs)
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				seq++
				if err := topic.Publish(ctx, tick{Symbol: btc, Price: 1, Qty: 2, Seq: seq}); err != nil {
					b.Fatal(err)
				}
			}
			wait(int64(seq))
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
		})
	}
	b.Run("async/parallel", func(b *testing.B) {
		const subs = 4
		topic := eventbus.MustTopic[tick](benchBus(b), "ticks")
		wait := subscribeCounting(b, topic, subs)
		b.ReportAllocs()
		var published atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			var seq uint64
			for pb.Next() {
				seq++
				if err := topic.Publish(ctx, tick{Symbol: btc, Price: 1, Qty: 2, Seq: seq}); err != nil {
					b.Error(err)
					return
				}
			}
			published.Add(int64(seq))
		})
		wait(published.Load()) // every subscriber got every event, or this never returns
		b.ReportMetric(float64(published.Load())/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("nosubs", func(b *testing.B) {
		topic := eventbus.MustTopic[tick](benchBus(b), "ticks")
		b.ReportAllocs()
		var seq uint64
		for b.Loop() {
			seq++
			if err := topic.Publish(ctx, tick{Symbol: btc, Price: 1, Qty: 2, Seq: seq}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPublishWait(b *testing.B) {
	const subs = 4
	ctx := context.Background()
	b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
		topic := eventbus.MustTopic[tick](benchBus(b), "ticks")
		subscribeCounting(b, topic, subs)
		b.ReportAllocs()
		var seq uint64
		for b.Loop() {
			seq++
			if err := topic.PublishWait(ctx, tick{Symbol: btc, Seq: seq}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSubscribeAll(b *testing.B) {
	ctx := context.Background()
	b.Run("subs=1", func(b *testing.B) {
		bus := benchBus(b)
		topic := eventbus.MustTopic[tick](bus, "ticks")
		var count atomic.Int64
		_, err := eventbus.SubscribeAll(bus, func(context.Context, eventbus.Event[any]) error {
			count.Add(1)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		var seq uint64
		for b.Loop() {
			seq++
			if err := topic.Publish(ctx, tick{Symbol: btc, Seq: seq}); err != nil {
				b.Fatal(err)
			}
		}
		for count.Load() < int64(seq) {
			time.Sleep(20 * time.Microsecond)
		}
		b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkLatency measures the handoff from the start of Publish to the
// start of an asynchronous handler on an otherwise idle bus.
func BenchmarkLatency(b *testing.B) {
	ctx := context.Background()
	b.Run("handoff", func(b *testing.B) {
		topic := eventbus.MustTopic[tick](benchBus(b), "ticks")
		var sent time.Time
		lat := make([]time.Duration, 0, 1<<16)
		done := make(chan struct{})
		_, err := topic.Subscribe(func(context.Context, eventbus.Event[tick]) error {
			lat = append(lat, time.Since(sent))
			done <- struct{}{}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			sent = time.Now()
			if err := topic.Publish(ctx, tick{Symbol: btc}); err != nil {
				b.Fatal(err)
			}
			<-done
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	})
}

// The baselines do the same work the plain way: per publish they build the
// same Event (payload, time.Now(), an ID from a counter), then call N funcs
// in a loop or send on one buffered channel per subscriber, each drained by
// its own goroutine.
func BenchmarkBaseline(b *testing.B) {
	for _, subs := range []int{1, 10} {
		b.Run(fmt.Sprintf("funcs/subs=%d", subs), func(b *testing.B) {
			var sum float64
			hs := make([]eventbus.Handler[tick], subs)
			for i := range hs {
				hs[i] = func(_ context.Context, ev eventbus.Event[tick]) error {
					sum += ev.Payload.Price
					return nil
				}
			}
			seq := callFuncs(b, hs)
			if want := float64(seq) * float64(subs); sum != want {
				b.Fatalf("handlers summed %v, want %v", sum, want)
			}
		})
	}
	// counted is funcs plus what the bus's statistics add to each Sync
	// call: each handler also adds one to a counter on a cache line of its
	// own. No bus that counts each call that way can be faster than this.
	for _, subs := range []int{1, 10} {
		b.Run(fmt.Sprintf("counted/subs=%d", subs), func(b *testing.B) {
			var sum float64
			hs := make([]eventbus.Handler[tick], subs)
			counts := make([]padded[atomic.Uint64], subs)
			for i := range hs {
				hs[i] = func(_ context.Context, ev eventbus.Event[tick]) error {
					sum += ev.Payload.Price
					counts[i].n.Add(1)
					return nil
				}
			}
			seq := callFuncs(b, hs)
			for i := range counts {
				if n := counts[i].n.Load(); n != seq {
					b.Fatalf("counter %d counted %d calls of %d", i, n, seq)
				}
			}
			if want := float64(seq) * float64(subs); sum != want {
				b.Fatalf("handlers summed %v, want %v", sum, want)
			}
		})
	}
	for _, subs := range []int{1, 4} {
		b.Run(fmt.Sprintf("channels/subs=%d", subs), func(b *testing.B) {
			chans := make([]chan eventbus.Event[tick], subs)
			counts := make([]padded[int64], subs)
			var wg sync.WaitGroup
			for i := range chans {
				chans[i] = make(chan eventbus.Event[tick], eventbus.DefaultQueueSize)
				wg.Go(func() {
					for range chans[i] {
						counts[i].n++
					}
				})
			}
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				seq++
				ev := baselineEvent(seq)
				for _, ch := range chans {
					ch <- ev
				}
			}
			for _, ch := range chans {
				close(ch)
			}
			wg.Wait()
			for i, c := range counts {
				if n := c.n; n != int64(seq) {
					b.Fatalf("subscriber %d got %d of %d events", i, n, seq)
				}
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// callFuncs is the plain loop of the funcs baselines: it calls every
// handler of hs with each event, and returns how many events it made.
func callFuncs(b *testing.B, hs []eventbus.Handler[tick]) (seq uint64) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		seq++
		ev := baselineEvent(seq)
		for _, h := range hs {
			_ = h(ctx, ev)
		}
	}
	return seq
}

func baselineEvent(seq uint64) eventbus.Event[tick] {
	var id eventbus.ID
	binary.BigEndian.PutUint64(id[8:], seq)
	return eventbus.Event[tick]{
		ID:      id,
		Topic:   "ticks",
		Time:    time.Now(),
		Payload: tick{Symbol: btc, Price: 1, Qty: 2, Seq: seq},
	}
}
