package benchmarks

import (
	"sync"
	"testing"

	"github.com/cskr/pubsub/v2"
)

// asyncCskr gives each subscriber a channel of queueSize events from Sub,
// drained by a goroutine of its own; one goroutine inside the library takes
// every Pub and sends it on to each of them.
func asyncCskr(b *testing.B, rs []*receiver) (uint64, func()) {
	ps := pubsub.New[string, Event](queueSize)
	var wg sync.WaitGroup
	for _, r := range rs {
		ch := ps.Sub(topic)
		wg.Go(func() {
			for ev := range ch {
				r.receive(ev.Quote.Seq)
			}
		})
	}
	var seq uint64
	for b.Loop() {
		seq++
		ps.Pub(newEvent(seq), topic)
	}
	return seq, func() {
		ps.Shutdown() // closes every channel Sub returned
		wg.Wait()
	}
}
