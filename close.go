package eventbus

import (
	"context"
	"fmt"
	"time"
)

// Close shuts the bus down gracefully, like http.Server.Shutdown: it stops
// intake (Publish and Subscribe return ErrClosed from then on), lets
// publishes under way finish, waits until every event already accepted has
// been handled (retries and dead letters included), and returns nil when
// the last goroutine of the bus has exited. Events that handlers publish
// while Close drains, in reaction to events accepted before, are still
// accepted and delivered: Close ends intake for good once no handler runs
// and nothing waits, in memory or, with a Transport, on the broker.
//
// If ctx ends first, Close gives up: it cancels the ctx of running handlers,
// discards the events still queued (counted in Stats.Undelivered), and
// returns ctx's error. Handlers that ignore their ctx may still be running
// then; a later Close waits for them again. Close may be called any number
// of times, from any goroutine, but not from a handler (it would wait for
// itself).
func (b *Bus) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed.Store(true)
		close(b.closing)
		b.mu.Unlock()
		for _, t := range b.topicList() {
			t.shut()
		}
	})
	for _, t := range b.topicList() {
		if err := t.core().quiesce(ctx); err != nil {
			return b.abandon(err)
		}
	}
	if !b.sealed.Load() {
		if err := b.settle(ctx); err != nil {
			return b.abandon(err)
		}
	}
	b.drainOnce.Do(func() {
		b.sealed.Store(true)
		for _, t := range b.topicList() {
			t.closeQueues()
		}
		for _, s := range b.liveList() {
			s.engine.closeQueue()
		}
	})
	for _, s := range b.liveList() {
		select {
		case <-s.done:
		case <-ctx.Done():
			return b.abandon(ctx.Err())
		}
	}
	b.stopOnce.Do(func() {
		close(b.stopWatch)
		go func() {
			_ = b.workers.Wait() // the goroutines return nil
			close(b.workersDone)
		}()
	})
	select {
	case <-b.workersDone:
	case <-ctx.Done():
		return b.abandon(ctx.Err())
	}
	b.cancel()
	if t := b.cfg.transport; t != nil {
		var err error
		b.transportOnce.Do(func() { err = t.Close(ctx) })
		if err != nil {
			return fmt.Errorf("eventbus: closing the transport: %w", err)
		}
	}
	return nil
}

// settle waits until the bus is quiet: every worker parked with nothing to
// read, every consumer on a Transport caught up with the broker, and no
// event published meanwhile (handlers may publish until then). Being quiet
// lasts: only a running handler could publish, and none runs.
func (b *Bus) settle(ctx context.Context) error {
	wait := 20 * time.Microsecond
	for {
		before := b.publishedTotal()
		for !b.idle() {
			select {
			case <-time.After(wait):
				wait = min(2*wait, 5*time.Millisecond)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := b.flushTransport(ctx); err != nil {
			return err
		}
		for _, s := range b.liveList() {
			if err := s.engine.drain(ctx); err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				return err
			}
		}
		if b.publishedTotal() == before && b.idle() {
			return nil
		}
	}
}

// idle reports whether no in-memory worker has anything to do.
func (b *Bus) idle() bool {
	for _, s := range b.liveList() {
		select {
		case <-s.done:
			continue // its workers have exited (Close gave up before)
		default:
		}
		for _, l := range s.lanes {
			if n, _, _ := l.length(); n > 0 {
				return false
			}
			for _, w := range l.ws {
				if !w.asleep() {
					return false
				}
			}
		}
	}
	return true
}

func (b *Bus) publishedTotal() uint64 {
	var n uint64
	for _, t := range b.topicList() {
		n += t.publishedCount()
	}
	return n
}

// reacting reports whether ctx is a handler's of this bus, whose publishes
// pass while Close drains.
func (b *Bus) reacting(ctx context.Context) bool {
	h, _ := ctx.Value(handlerKey{}).(*Bus)
	return h == b && !b.sealed.Load()
}

// handlerKey marks the ctx of the bus's asynchronous handlers with the bus.
type handlerKey struct{}

// abandon is Close giving up at its deadline.
func (b *Bus) abandon(err error) error {
	b.aborted.Store(true)
	b.cancel()
	for _, s := range b.liveList() {
		_ = s.engine.discard(true) // logged; a transport's broker keeps what was not settled
	}
	for _, t := range b.topicList() {
		t.closeQueues()
	}
	return err
}

// nudgeQuiet tells Close that a topic's last publish under way is over: it
// wakes every Close waiting for that, however many there are.
func (b *Bus) nudgeQuiet() {
	b.quietMu.Lock()
	close(b.quiet)
	b.quiet = make(chan struct{})
	b.quietMu.Unlock()
}

// quietCh returns the channel the next nudgeQuiet closes.
func (b *Bus) quietCh() <-chan struct{} {
	b.quietMu.Lock()
	defer b.quietMu.Unlock()
	return b.quiet
}
