package eventbus

import (
	"cmp"
	"context"
	"runtime/debug"
)

// outcome is what became of one Sync handler's call.
type outcome uint8

const (
	handled outcome = iota // called, and it (or a retry) succeeded
	failed                 // called, and every attempt failed
	skipped                // not called: the subscription was unsubscribed
)

// publishSync runs the Sync handlers of subs for ev, one after the other,
// in the publisher's goroutine, and counts each call as it returns
// (countCall). A handler costs a load: Unsubscribe's bit is checked with it
// (a call that saw it clear started before Unsubscribe returned, exactly as
// with a lock). Panics are recovered once per publish, not once per
// handler: after a panic, the loop resumes with the next handler. n is the
// publish's number on the topic: it decides which calls are timed for the
// latency statistics (see sampled): all of them in the topic's first
// publishes, then one handler of every sampleEvery-th publish, in turn.
//
// It returns the first panic of the logger, if any (see guard), for the
// publisher to raise again once the publish is finished.
func publishSync[T any](ctx context.Context, subs []*subscriber[T], ev *Event[T], n uint64) (escaped *recovered) {
	timeAll, timed := n <= 16, -1
	if !timeAll && sampled(n) && len(subs) > 0 {
		timed = int(n / sampleEvery % uint64(len(subs)))
	}
	for i := 0; i < len(subs); i++ {
		var p *recovered
		if i, p = callSync(ctx, subs, i, ev, timeAll, timed); p != nil {
			s := subs[i]
			if p.reporting {
				s.countCall(failed)
				escaped = cmp.Or(escaped, p)
				continue
			}
			p = guard(s.Subscription, func() outcome {
				return s.syncFailed(ctx, ev, p.stack, &panicError{value: p.value})
			})
			escaped = cmp.Or(escaped, p)
		}
	}
	return escaped
}

type recovered struct {
	value     any
	stack     []byte
	reporting bool // not the handler's panic: it came from reporting a failure (see guard)
}

// callSync calls and counts the handlers of subs from i on, until one
// panics: it returns the index it stopped at and, if it stopped early, the
// panic; that call is not counted yet. It times every call if timeAll, else
// the call at index timed.
func callSync[T any](ctx context.Context, subs []*subscriber[T], i int, ev *Event[T], timeAll bool, timed int) (at int, p *recovered) {
	reporting := false
	defer func() {
		if r := recover(); r != nil {
			p = &recovered{value: r, stack: debug.Stack(), reporting: reporting}
		}
	}()
	e := *ev // handler(ctx, *ev) would copy *ev aside, then again into the call's arguments
	for at = i; at < len(subs); at++ {
		s := subs[at]
		o := handled
		switch {
		case timeAll || at == timed:
			reporting = true // callTimed recovers the handler's own panics
			o, _ = s.callTimed(ctx, ev)
			reporting = false
		case s.gate.Load() != 0 && s.unsubscribed(ctx):
			o = skipped
		default:
			if err := s.handler(ctx, e); err != nil {
				reporting = true
				o = s.syncFailed(ctx, ev, nil, err)
				reporting = false
			}
		}
		s.countCall(o)
	}
	return at, nil
}

// guard runs a step of a Sync delivery that recovers its handler's panics
// itself, counts the call, and recovers what panic still gets out: the bus
// recovers those of the user's functions a failure calls (the error
// handler, Retry's backoff) too, but not those of the logger (WithLogger)
// as it reports the failure, there being nowhere left to report them. The
// publisher raises that panic again once the publish is finished, so that
// Close does not wait for a publish that never ends; the call counts as
// failed.
func guard(s *Subscription, step func() outcome) (p *recovered) {
	o := failed
	defer func() {
		if r := recover(); r != nil {
			p = &recovered{value: r, stack: debug.Stack(), reporting: true}
		}
		s.countCall(o)
	}()
	o = step()
	return nil
}

// syncFailed goes on after the first attempt of a Sync delivery failed.
func (s *subscriber[T]) syncFailed(ctx context.Context, ev *Event[T], stack []byte, err error) outcome {
	if s.retry(ctx, ev, s.failure(ev, 1, stack, err)) != nil {
		return failed
	}
	return handled
}

// callTimed delivers ev to a Sync handler on its own, timing the call, for
// PublishWait, Replay and the timed calls of publishSync; the caller
// counts the call.
func (s *subscriber[T]) callTimed(ctx context.Context, ev *Event[T]) (outcome, error) {
	if s.unsubscribed(ctx) {
		return skipped, nil
	}
	if err := s.deliver(ctx, ev, true); err != nil {
		return failed, err
	}
	return handled, nil
}

// replaySync hands a new Sync subscription the latest events of its
// topics, then lets the publishers that reached it meanwhile go on (they
// wait in awaitReplay). The handler gets a ctx that marks the replay, so
// that a publish it makes with that ctx to its own topic reaches it at
// once instead of waiting for the replay to end.
func (s *subscriber[T]) replaySync(evs []Event[T]) {
	defer func() {
		s.gate.And(^int64(gateReplaying))
		close(s.replayed)
	}()
	if testHookReplay != nil {
		testHookReplay()
	}
	ctx := context.WithValue(context.Background(), replayKey{}, s.Subscription)
	for i := range evs {
		_ = s.deliverSync(ctx, &evs[i]) // failures are reported by deliver
	}
}

// testHookReplay, when set by a test, runs before a Sync Replay is
// delivered: where a publish could overtake it.
var testHookReplay func()

// replayKey marks the ctx of a Sync Replay's handler calls with the
// subscription being replayed to.
type replayKey struct{}

// unsubscribed reports, for a publisher about to call a Sync handler,
// whether the subscription was unsubscribed, once a Replay under way
// (gateReplaying) has been delivered.
func (s *subscriber[T]) unsubscribed(ctx context.Context) bool {
	if s.gate.Load()&gateReplaying != 0 {
		s.awaitReplay(ctx)
	}
	return s.gate.Load()&gateClosed != 0
}

// awaitReplay waits, in a publisher about to call a Sync handler whose
// gate has gateReplaying set, until the subscription's replay has been
// delivered; a publish from within that replay does not wait for itself.
func (s *subscriber[T]) awaitReplay(ctx context.Context) {
	if ctx.Value(replayKey{}) == s.Subscription {
		return
	}
	<-s.replayed
}

// deliverSync delivers ev to a Sync handler outside any publish (Replay),
// timing the call, and counts it.
func (s *subscriber[T]) deliverSync(ctx context.Context, ev *Event[T]) error {
	o, err := s.callTimed(ctx, ev)
	s.countCall(o)
	return err
}
