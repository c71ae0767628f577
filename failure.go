package eventbus

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// sampled says whether handler call number n (from 1), or, for Sync
// handlers, publish number n of the topic, is timed: reading the clock twice
// costs more than a small handler, so the first calls are, for quiet
// subscriptions to have figures, and then one in sampleEvery (for Sync
// handlers, one handler of each such publish, in turn).
func sampled(n uint64) bool { return n <= 16 || n%sampleEvery == 0 }

// sampleEvery is how often a call is timed after the first 16: rarely
// enough that the two clock reads of a timed call vanish in the average,
// often enough that a busy subscription has thousands of samples a second.
const sampleEvery = 256

// deliver hands ev to the handler, retrying as Retry allows, and
// dead-letters it after the last failed attempt. It returns nil or the last
// attempt's *HandlerError. timed says whether to time the first attempt.
func (s *subscriber[T]) deliver(ctx context.Context, ev *Event[T], timed bool) error {
	he := s.attempt(ctx, ev, 1, timed)
	if he == nil {
		return nil
	}
	return s.retry(ctx, ev, he)
}

// retry goes on after a failed attempt: more attempts as Retry allows, then
// the dead letter.
func (s *subscriber[T]) retry(ctx context.Context, ev *Event[T], he *HandlerError) error {
	for attempt := he.Attempt; ; {
		if attempt >= s.maxAttempts {
			s.deadLetter(ctx, ev, he)
			return he
		}
		if s.gate.Load()&gateClosed != 0 {
			return he // unsubscribed: no more attempts, nothing owed
		}
		if !s.pause(ctx, attempt) {
			s.count(Counts{Undelivered: 1}) // Close gave up, or the publisher's ctx ended
			return he
		}
		s.count(Counts{Retries: 1})
		attempt++
		if he = s.attempt(ctx, ev, attempt, false); he == nil {
			return nil
		}
	}
}

// pause waits the backoff after a failed attempt; false if the wait was cut
// short by Close giving up, by ctx, or by Unsubscribe.
func (s *subscriber[T]) pause(ctx context.Context, attempt int) bool {
	var d time.Duration
	if s.backoff != nil {
		d = s.backoffAfter(attempt)
	}
	if d <= 0 {
		select {
		case <-s.gone: // unsubscribed: no attempt starts after it
			return false
		default:
			return ctx.Err() == nil && s.bus.handlerCtx.Err() == nil
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.bus.handlerCtx.Done():
	case <-s.gone:
	}
	return false
}

// backoffAfter returns the Retry backoff after failed attempt number
// attempt. If the backoff function panics, the panic is logged and the next
// attempt follows at once: a panic here would otherwise escape from the
// delivery, which for a Sync handler is the publisher's Publish.
func (s *subscriber[T]) backoffAfter(attempt int) (d time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			d = 0
			s.bus.logger.LogAttrs(context.Background(), slog.LevelError, "eventbus: Retry backoff function panicked; retrying at once",
				slog.String("subscriber", s.name), slog.String("topic", s.topic), slog.Int("attempt", attempt),
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		}
	}()
	return s.backoff(attempt)
}

// attempt calls the handler once, timing it if asked, and reports a failure.
func (s *subscriber[T]) attempt(ctx context.Context, ev *Event[T], n int, timed bool) *HandlerError {
	var start time.Time
	if timed {
		start = time.Now()
	}
	stack, err := call(ctx, s.handler, ev)
	if timed {
		s.latency.Record(time.Since(start))
	}
	if err == nil {
		return nil
	}
	return s.failure(ev, n, stack, err)
}

// failure makes, counts and reports the HandlerError of failed attempt n.
func (s *subscriber[T]) failure(ev *Event[T], n int, stack []byte, err error) *HandlerError {
	he := &HandlerError{
		Topic: ev.Topic, EventID: ev.ID, Subscriber: s.name, Attempt: n,
		Err: err, Panic: stack != nil, Stack: stack,
	}
	s.bus.report(s.Subscription, he, n < s.maxAttempts)
	return he
}

// call runs h, turning a panic into an error with the stack. Unlike errgroup,
// which re-panics in Wait, the bus recovers: a trading system must not go
// down because one consumer has a bug, and the failure is still counted,
// logged and reported.
func call[T any](ctx context.Context, h Handler[T], ev *Event[T]) (stack []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			stack, err = debug.Stack(), &panicError{value: r}
		}
	}()
	return nil, h(ctx, *ev)
}

// report counts, logs and hands on a failed handler call: at Warn when
// another attempt follows, at Error when it was the last.
func (b *Bus) report(s *Subscription, he *HandlerError, retrying bool) {
	d := Counts{Errors: 1}
	if he.Panic {
		d.Panics = 1
	}
	s.count(d)
	attrs := []slog.Attr{
		slog.String("topic", he.Topic),
		slog.String("event_id", he.EventID.String()),
		slog.String("subscriber", he.Subscriber),
		slog.Int("attempt", he.Attempt),
		slog.Any("error", he.Err),
	}
	if he.Panic {
		attrs = append(attrs, slog.String("stack", string(he.Stack)))
	}
	level, msg := slog.LevelError, "eventbus: handler failed"
	if retrying {
		level, msg = slog.LevelWarn, "eventbus: handler failed; retrying"
	}
	b.logger.LogAttrs(context.Background(), level, msg, attrs...)
	if b.cfg.errorHandler != nil {
		b.callErrorHandler(he)
	}
}

// callErrorHandler runs the WithErrorHandler function. A panic in it is
// logged, not passed on: it would otherwise escape from the delivery that
// failed, which for a Sync handler is the publisher's Publish, and leave
// Close waiting for that publish.
func (b *Bus) callErrorHandler(he *HandlerError) {
	defer func() {
		if r := recover(); r != nil {
			b.logger.LogAttrs(context.Background(), slog.LevelError, "eventbus: error handler panicked",
				slog.String("topic", he.Topic), slog.String("event_id", he.EventID.String()),
				slog.String("subscriber", he.Subscriber), slog.Any("panic", r),
				slog.String("stack", string(debug.Stack())))
		}
	}()
	b.cfg.errorHandler(he)
}
