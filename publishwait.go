package eventbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// PublishWait publishes payload like Publish and then waits until every
// subscription has handled the event, including retries. It returns the
// errors.Join of the *HandlerError of every subscription whose handler
// failed, or, if ctx ends first, ctx's error (the event stays accepted).
//
// Asynchronous subscriptions handle the event in order with the events
// before it; Sync handlers run in parallel, at most WithWorkers at a time,
// each with ctx. A subscription whose policy dropped the event contributes an
// error wrapping ErrQueueFull. PublishWait called from a handler cannot wait
// for that same subscription when only the caller could handle the event:
// the event is queued for it and the result includes an error wrapping
// ErrDeadlock.
//
// On a bus with a Transport the handlers may be in other processes, which
// PublishWait cannot wait for: it publishes nothing and returns an error
// wrapping errors.ErrUnsupported (or, as above, ErrClosed or a
// *ValidationError).
func (t *Topic[T]) PublishWait(ctx context.Context, payload T) error {
	var ev Event[T]
	ev.Payload = payload // see Publish
	if err := t.stamp(&ev); err != nil {
		return err
	}
	return t.engine.publishWait(ctx, ev)
}

// publishWait queues ev for the asynchronous subscriptions, runs the Sync
// handlers, and waits for them all.
func (t *memTopic[T]) publishWait(ctx context.Context, ev Event[T]) error {
	w := newWaiter(callerWorker(ctx))
	var anyEv Event[any]
	subs, all, _, err := t.accept(ctx, &ev, &anyEv, w, false)
	if err != nil {
		return err
	}
	if hasSync(subs, all) {
		var g errgroup.Group
		g.SetLimit(t.bus.cfg.workers)
		var escaped atomic.Pointer[recovered] // see publish
		if subs != nil {
			goSync(ctx, &g, subs.sync, &ev, w, &escaped)
		}
		if all != nil && len(all.sync) > 0 {
			shared := anyEv // what the goroutines share escapes; anyEv itself stays on the stack
			boxOnce(&shared, &ev)
			goSync(ctx, &g, all.sync, &shared, w, &escaped)
		}
		_ = g.Wait() // the goroutines return nil; errors go to w
		t.leave()
		if p := escaped.Load(); p != nil {
			panic(p.value)
		}
	}
	w.finish(nil) // the publisher's own hold
	select {
	case <-w.done:
		return w.err()
	case <-ctx.Done():
		return fmt.Errorf("eventbus: PublishWait on %s: %w", t.name, ctx.Err())
	}
}

// goSync runs PublishWait's Sync handlers of subs on g, each failure going
// to w.
func goSync[T any](ctx context.Context, g *errgroup.Group, subs []*subscriber[T], ev *Event[T], w *waiter, escaped *atomic.Pointer[recovered]) {
	for _, s := range subs {
		g.Go(func() error {
			p := guard(s.Subscription, func() outcome {
				o, err := s.callTimed(ctx, ev)
				if err != nil {
					w.fail(err)
				}
				return o
			})
			if p != nil {
				escaped.CompareAndSwap(nil, p)
			}
			return nil
		})
	}
}

// waiter collects the outcome of one PublishWait.
type waiter struct {
	pending  atomic.Int64 // deliveries to wait for, plus one held by the publisher
	done     chan struct{}
	selfLane *lane // the caller's own lane, if only the caller drains it
	mu       sync.Mutex
	errs     []error
}

func newWaiter(self *worker) *waiter {
	w := &waiter{done: make(chan struct{})}
	if self != nil && self.lane != nil && self.lane.workers == 1 {
		w.selfLane = self.lane
	}
	w.pending.Store(1)
	return w
}

func (w *waiter) add(n int) { w.pending.Add(int64(n)) }

func (w *waiter) fail(err error) {
	w.mu.Lock()
	w.errs = append(w.errs, err)
	w.mu.Unlock()
}

func (w *waiter) finish(err error) {
	if err != nil {
		w.fail(err)
	}
	if w.pending.Add(-1) == 0 {
		close(w.done)
	}
}

func (w *waiter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.errs...)
}
