package natsbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
)

// asyncRetries is how many times an asynchronous publish whose
// acknowledgement did not come (timeout, no stream answering, a
// disconnection) is sent again, with the same Nats-Msg-Id, before it is
// reported. A broker that answered with an error is not asked again.
const asyncRetries = 3

// asyncRetryWait is the pause before the first resend; it doubles for
// each one after.
const asyncRetryWait = 100 * time.Millisecond

// asyncPublisher is the WithAsyncPublish mode of a transport: Publish
// returns once the message is queued on the connection, and a window of
// at most cap(slots) publishes await the stream's acknowledgement. It
// keeps every message until the broker acknowledged it or it was reported
// failed, so that nothing the broker did not store goes unreported.
type asyncPublisher struct {
	t     *transport
	js    jetstream.JetStream // its own, for the ack and error callbacks
	slots chan struct{}       // one per publish awaiting its ack

	mu      sync.Mutex
	pending map[*nats.Msg]*asyncPub // sent, awaiting the broker
	waiting int                     // admitted, not yet settled: in pending or about to be
	idle    chan struct{}           // closed when waiting drops to 0; nil while nobody flushes
	report  func(*eventbus.Envelope, error)
	closed  bool
	done    chan struct{} // closed with closed set: publishes waiting for room give up

	// The watcher reports what is outstanding when the connection closes:
	// the client then drops its pending acknowledgements without a word.
	connClosed chan nats.Status
	stopWatch  chan struct{} // closed by close: the watcher ends
	stopOnce   sync.Once
	watchDone  chan struct{} // closed when the watcher has ended
}

// asyncPub is one publish awaiting its acknowledgement.
type asyncPub struct {
	env   eventbus.Envelope
	tries int // sends so far
}

func newAsyncPublisher(t *transport) (*asyncPublisher, error) {
	a := &asyncPublisher{
		t:       t,
		slots:   make(chan struct{}, t.cfg.window),
		pending: make(map[*nats.Msg]*asyncPub, t.cfg.window),
		done:    make(chan struct{}),
	}
	js, err := jetstream.New(t.nc,
		jetstream.WithDefaultTimeout(t.cfg.timeout),
		// The window bounds what is outstanding, so the client's own limit,
		// which fails a publish after a fixed stall, never applies.
		jetstream.WithPublishAsyncMaxPending(2*t.cfg.window+asyncRetries),
		jetstream.WithPublishAsyncTimeout(t.cfg.timeout),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, msg *nats.Msg, _ *jetstream.PubAck) {
			a.settle(msg)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, msg *nats.Msg, err error) {
			// The client calls this while holding its publisher's lock
			// when an ack times out: resending from here would deadlock.
			go a.failed(msg, err)
		}),
	)
	if err != nil {
		return nil, err
	}
	a.js = js
	a.connClosed = t.nc.StatusChanged(nats.CLOSED)
	a.stopWatch, a.watchDone = make(chan struct{}), make(chan struct{})
	go a.watch()
	return a, nil
}

// watch reports every publish still outstanding when the connection
// closes; it ends then, or when the publisher is closed.
func (a *asyncPublisher) watch() {
	defer close(a.watchDone)
	select {
	case <-a.connClosed:
		a.failAll(fmt.Errorf("the connection closed before the broker acknowledged it: %w", nats.ErrConnectionClosed))
	case <-a.stopWatch:
		a.t.nc.RemoveStatusListener(a.connClosed)
	}
}

// failAll reports every publish still awaiting its acknowledgement.
func (a *asyncPublisher) failAll(err error) {
	a.mu.Lock()
	msgs := make([]*nats.Msg, 0, len(a.pending))
	for msg := range a.pending {
		msgs = append(msgs, msg)
	}
	a.mu.Unlock()
	for _, msg := range msgs {
		a.fail(msg, err)
	}
}

// onFailure sets where failures are reported.
func (a *asyncPublisher) onFailure(f func(*eventbus.Envelope, error)) {
	a.mu.Lock()
	a.report = f
	a.mu.Unlock()
}

// publish queues msg, carrying env, once the window has room.
func (a *asyncPublisher) publish(ctx context.Context, msg *nats.Msg, env *eventbus.Envelope, subject string) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return fmt.Errorf("natsbus: publish to %s: %w", subject, eventbus.ErrClosed)
	}
	a.waiting++
	a.mu.Unlock()
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		a.leave()
		return fmt.Errorf("natsbus: publish %s to %s: waiting for room among %d unacknowledged publishes: %w",
			env.ID, subject, cap(a.slots), ctx.Err())
	case <-a.done:
		a.leave()
		return fmt.Errorf("natsbus: publish to %s: %w", subject, eventbus.ErrClosed)
	}
	a.mu.Lock()
	a.pending[msg] = &asyncPub{env: *env, tries: 1}
	a.mu.Unlock()
	if _, err := a.js.PublishMsgAsync(msg); err != nil {
		a.mu.Lock()
		delete(a.pending, msg)
		a.mu.Unlock()
		<-a.slots
		a.leave()
		return fmt.Errorf("natsbus: publish %s to %s: %w", env.ID, subject, err)
	}
	return nil
}

// settle ends the wait for msg, stored by the broker or reported.
func (a *asyncPublisher) settle(msg *nats.Msg) {
	a.mu.Lock()
	_, ok := a.pending[msg]
	delete(a.pending, msg)
	a.mu.Unlock()
	if ok {
		<-a.slots
		a.leave()
	}
}

// leave counts one admitted publish as settled, waking Flush at zero.
func (a *asyncPublisher) leave() {
	a.mu.Lock()
	a.waiting--
	if a.waiting == 0 && a.idle != nil {
		close(a.idle)
		a.idle = nil
	}
	a.mu.Unlock()
}

// failed handles a publish whose acknowledgement did not come or was an
// error: sent again after a pause if the broker may simply not have got
// it, else (or after the last try) reported.
func (a *asyncPublisher) failed(msg *nats.Msg, err error) {
	a.mu.Lock()
	p, ok := a.pending[msg]
	retry := ok && p.tries <= asyncRetries && !a.t.nc.IsClosed() && retriable(err)
	var wait time.Duration
	if retry {
		wait = asyncRetryWait << (p.tries - 1)
		p.tries++
	}
	a.mu.Unlock()
	if !ok {
		return // already reported, by Close giving up
	}
	if !retry {
		a.fail(msg, err)
		return
	}
	time.AfterFunc(wait, func() {
		if _, err := a.js.PublishMsgAsync(msg); err != nil {
			a.fail(msg, err)
		}
	})
}

// retriable reports whether a publish that failed with err may succeed
// if sent again: the broker did not answer, rather than refused.
func retriable(err error) bool {
	var apiErr *jetstream.APIError
	return !errors.As(err, &apiErr)
}

// fail reports msg's event as not stored, then settles it.
func (a *asyncPublisher) fail(msg *nats.Msg, err error) {
	a.mu.Lock()
	p, ok := a.pending[msg]
	report := a.report
	a.mu.Unlock()
	if !ok {
		return
	}
	err = fmt.Errorf("natsbus: publish %s to %s (sent %d times): %w", p.env.ID, msg.Subject, p.tries, err)
	if report != nil {
		report(&p.env, err)
	} else {
		a.t.cfg.logger.Error("natsbus: the broker did not store a published event", "subject", msg.Subject, "event_id", p.env.ID.String(), "err", err)
	}
	a.settle(msg)
}

// flush waits until every publish admitted so far is settled.
func (a *asyncPublisher) flush(ctx context.Context) error {
	a.mu.Lock()
	if a.waiting == 0 {
		a.mu.Unlock()
		return nil
	}
	if a.idle == nil {
		a.idle = make(chan struct{})
	}
	idle := a.idle
	n := a.waiting
	a.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsbus: flush: %d publishes still await the broker's acknowledgement: %w", n, ctx.Err())
	}
}

// close refuses new publishes and waits for the outstanding ones; if ctx
// ends first, it reports each one still unacknowledged as failed, since
// nothing then says the broker stored it. It stops the watcher.
func (a *asyncPublisher) close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.done)
	}
	a.mu.Unlock()
	err := a.flush(ctx)
	if err != nil {
		a.failAll(fmt.Errorf("Close gave up waiting for the acknowledgement: %w", ctx.Err()))
	}
	a.stopOnce.Do(func() { close(a.stopWatch) })
	<-a.watchDone
	return err
}
