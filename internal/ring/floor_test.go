package ring

import (
	"fmt"
	"sync"
	"testing"
	"time"
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
// producer stamps an event with the bus's clock and puts it, under a lock
// and as a publish does,
// for readers that only add it up: one ring with a group per reader (ring),
// against a buffered channel per reader doing the same (channel), for 1 and
// 4 readers. Everything else a publish does, the ID, the latest event,
// statistics, subscription checks, and everything a delivery does, is left
// out. Compare with BenchmarkCacheLineRoundTrip in the same run: both move
// with the distance between the two cores.
func BenchmarkFloor(b *testing.B) {
	for _, readers := range []int{1, 4} {
		b.Run(fmt.Sprintf("ring/readers=%d", readers), func(b *testing.B) { floorRing(b, readers) })
		b.Run(fmt.Sprintf("channel/readers=%d", readers), func(b *testing.B) { floorChannel(b, readers) })
	}
}

func floorRing(b *testing.B, readers int) {
	r := New[floorEvent](16384)
	var mu sync.Mutex
	groups := make([]*Group[floorEvent], readers)
	done := make(chan uint64)
	for i := range groups {
		groups[i] = r.Add(10000, 1, 64)
		go func(w *Worker[floorEvent]) {
			var n uint64
			for {
				e, st := w.Next()
				if st == Done {
					done <- n
					return
				}
				n += e.payload[3]
			}
		}(groups[i].Workers()[0])
	}
	var seq uint64
	for b.Loop() {
		seq++
		mu.Lock()
		for !r.Room() {
			for _, g := range groups {
				for !g.Room() {
					mu.Unlock()
					<-g.WaitRoom()
					mu.Lock()
				}
			}
		}
		*r.Claim() = floorEvent{topic: "ticks", time: time.Now(), payload: [4]uint64{1, 2, 3, 1}}
		r.Commit()
		mu.Unlock()
	}
	mu.Lock()
	r.Close()
	mu.Unlock()
	for range readers {
		if got := <-done; got != seq {
			b.Fatalf("consumed %d of %d", got, seq)
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
}

func floorChannel(b *testing.B, readers int) {
	chans := make([]chan floorEvent, readers)
	done := make(chan uint64)
	for i := range chans {
		chans[i] = make(chan floorEvent, 10000)
		go func(ch <-chan floorEvent) {
			var n uint64
			for e := range ch {
				n += e.payload[3]
			}
			done <- n
		}(chans[i])
	}
	var seq uint64
	for b.Loop() {
		seq++
		e := floorEvent{topic: "ticks", time: time.Now(), payload: [4]uint64{1, 2, 3, 1}}
		for _, ch := range chans {
			ch <- e
		}
	}
	for _, ch := range chans {
		close(ch)
	}
	for range readers {
		if got := <-done; got != seq {
			b.Fatalf("consumed %d of %d", got, seq)
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
}
