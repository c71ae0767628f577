package ring

import (
	"sync"
	"testing"
	"time"

	"github.com/quantumtrader/eventbus/internal/clock"
)

// floorEvent has the size and shape of eventbus's ring slot for an
// Event[T] with a 32-byte payload and a PublishWait pointer.
type floorEvent struct {
	_       [16]byte // the ID
	topic   string
	time    time.Time
	payload [4]uint64
	_       map[string]string // the metadata
	_       *int              // the waiter
}

// BenchmarkFloor is the floor of the bus's asynchronous delivery: one
// producer stamps an event with the bus's clock and puts it, under a lock,
// for one reader that only adds it up (ring), against a buffered channel
// doing the same (channel). Everything else a publish does, the ID, the
// latest event, statistics, subscription checks, and everything a delivery
// does, is left out. Compare with BenchmarkCacheLineRoundTrip in the same
// run: both move with the distance between the two cores.
func BenchmarkFloor(b *testing.B) {
	b.Run("ring", func(b *testing.B) {
		r := New[floorEvent](16384)
		g := r.Add(10000, 1, 64)
		var mu sync.Mutex
		done := make(chan uint64)
		go func() {
			w := g.Workers()[0]
			var n uint64
			for {
				e, st := w.Next()
				if st == Done {
					done <- n
					return
				}
				n += e.payload[3]
			}
		}()
		var seq uint64
		for b.Loop() {
			seq++
			mu.Lock()
			for !g.Room() {
				mu.Unlock()
				<-g.WaitRoom()
				mu.Lock()
			}
			*r.Claim() = floorEvent{topic: "ticks", time: clock.Now(), payload: [4]uint64{1, 2, 3, 1}}
			r.Commit()
			mu.Unlock()
		}
		mu.Lock()
		r.Close()
		mu.Unlock()
		if got := <-done; got != seq {
			b.Fatalf("consumed %d of %d", got, seq)
		}
	})
	b.Run("channel", func(b *testing.B) {
		ch := make(chan floorEvent, 10000)
		done := make(chan uint64)
		go func() {
			var n uint64
			for e := range ch {
				n += e.payload[3]
			}
			done <- n
		}()
		var seq uint64
		for b.Loop() {
			seq++
			ch <- floorEvent{topic: "ticks", time: clock.Now(), payload: [4]uint64{1, 2, 3, 1}}
		}
		close(ch)
		if got := <-done; got != seq {
			b.Fatalf("consumed %d of %d", got, seq)
		}
	})
}
