package benchmarks

import (
	"context"
	"sync"
	"testing"
)

// plainHandler has the shape of an eventbus handler, so that the plain
// scenarios pay for the same indirect call per subscriber.
type plainHandler func(ctx context.Context, ev Event) error

func plainHandlerOf(r *receiver) plainHandler {
	return func(_ context.Context, ev Event) error {
		r.receive(ev.Quote.Seq)
		return nil
	}
}

// syncPlain is the floor of synchronous fan-out: a loop over the handlers.
func syncPlain(b *testing.B, rs []*receiver) (uint64, func()) {
	ctx := context.Background()
	handlers := make([]plainHandler, len(rs))
	for i, r := range rs {
		handlers[i] = plainHandlerOf(r)
	}
	var seq uint64
	for b.Loop() {
		seq++
		ev := newEvent(seq)
		for _, h := range handlers {
			_ = h(ctx, ev)
		}
	}
	return seq, func() {}
}

// asyncPlain is the idiomatic floor of asynchronous fan-out: one buffered
// channel per subscriber, each drained by a goroutine of its own.
func asyncPlain(b *testing.B, rs []*receiver) (uint64, func()) {
	ctx := context.Background()
	chans := make([]chan Event, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		ch := make(chan Event, queueSize)
		chans[i] = ch
		h := plainHandlerOf(r)
		wg.Go(func() {
			for ev := range ch {
				_ = h(ctx, ev)
			}
		})
	}
	var seq uint64
	for b.Loop() {
		seq++
		ev := newEvent(seq)
		for _, ch := range chans {
			ch <- ev
		}
	}
	return seq, func() {
		for _, ch := range chans {
			close(ch)
		}
		wg.Wait()
	}
}
