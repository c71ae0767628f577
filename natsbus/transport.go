package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
)

var (
	_ eventbus.Transport      = (*transport)(nil)
	_ eventbus.AsyncPublisher = (*transport)(nil)
	_ eventbus.Receiver       = (*receiver)(nil)
	_ eventbus.Drainer        = (*receiver)(nil)
	_ eventbus.Delivery       = (*delivery)(nil)
)

// transport implements eventbus.Transport on one JetStream stream.
type transport struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream // a handle on cfg.stream: its methods ask the broker
	cfg     config
	subject string          // cfg.prefix + ".", put before every topic
	async   *asyncPublisher // nil: Publish waits for the stream's acknowledgement
	closed  atomic.Bool

	mu        sync.Mutex
	receivers map[*receiver]struct{} // started and not yet finished; guarded by mu
}

// New returns an eventbus.Transport that carries events through NATS
// JetStream over nc, for eventbus.WithTransport.
//
// New validates the options, then creates the stream, or updates it to
// match them if it exists; it blocks for at most the WithTimeout duration
// (default DefaultTimeout). Settings of an existing stream that no option
// governs, such as replicas or size limits set by an operator, are kept.
// Options that are invalid, or that contradict each other, give an error
// wrapping eventbus.ErrInvalidOption before any broker is contacted.
//
// The transport does not own nc: its Close leaves nc open, and nc must
// stay open until Close has returned. The transport is safe for concurrent
// use.
func New(nc *nats.Conn, opts ...Option) (eventbus.Transport, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, fmt.Errorf("%w: natsbus.New: nil *nats.Conn", eventbus.ErrInvalidOption)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.timeout))
	if err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	t := &transport{
		nc:        nc,
		js:        js,
		cfg:       cfg,
		subject:   cfg.prefix + ".",
		receivers: make(map[*receiver]struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	if t.stream, err = t.ensureStream(ctx); err != nil {
		return nil, fmt.Errorf("natsbus: stream %s: %w", cfg.stream, err)
	}
	if cfg.window > 0 {
		if t.async, err = newAsyncPublisher(t); err != nil {
			return nil, fmt.Errorf("natsbus: %w", err)
		}
	}
	return t, nil
}

// ensureStream creates the stream or brings the settings the options
// govern up to date, leaving the others as they are.
func (t *transport) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	want := jetstream.StreamConfig{
		Name:        t.cfg.stream,
		Description: "eventbus events",
		Subjects:    []string{t.subject + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     t.cfg.storage,
		MaxAge:      t.cfg.maxAge,
		Duplicates:  t.cfg.duplicateWindow(),
	}
	s, err := t.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = t.js.CreateStream(ctx, want)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return s, err
		}
		// Another process created it first, maybe with other settings.
		s, err = t.js.Stream(ctx, want.Name)
	}
	if err != nil {
		return nil, err
	}
	cur := s.CachedInfo().Config
	if cur.Storage != want.Storage {
		return nil, fmt.Errorf("%w: the stream exists with %v and its storage cannot change to %v",
			eventbus.ErrInvalidOption, cur.Storage, want.Storage)
	}
	if slices.Equal(cur.Subjects, want.Subjects) && cur.Retention == want.Retention &&
		cur.MaxAge == want.MaxAge && cur.Duplicates == want.Duplicates {
		return s, nil
	}
	cur.Subjects = want.Subjects
	cur.Retention = want.Retention
	cur.MaxAge = want.MaxAge
	cur.Duplicates = want.Duplicates
	return t.js.UpdateStream(ctx, cur)
}

// Publish stores env in the stream under the subject prefix + "." +
// env.Topic and returns once the broker has acknowledged it, or, with
// WithAsyncPublish, once it is queued on the connection (see there).
// Concurrent calls share the connection, each waiting only for its own
// acknowledgement. A publish of
// an env.ID seen within the duplicate window is acknowledged without
// storing the event again, so a failed Publish can be retried with the
// same envelope; an error does not prove the event was not stored (the
// broker may have stored it and the acknowledgement been lost, and while
// the connection is reconnecting the client queues the message and sends
// it once reconnected). A ctx without a deadline is bounded by WithTimeout.
//
// Errors name the subject and wrap the cause: eventbus.ErrInvalidTopic for
// a bad topic, eventbus.ErrClosed after Close, ctx's error, or the
// client's (nats.ErrConnectionClosed, jetstream.ErrNoStreamResponse, ...).
func (t *transport) Publish(ctx context.Context, env *eventbus.Envelope) error {
	if env == nil {
		return errors.New("natsbus: publish: nil envelope")
	}
	if err := checkTopic(env.Topic); err != nil {
		return fmt.Errorf("natsbus: publish: %w", err)
	}
	subject := t.subject + env.Topic
	if t.closed.Load() {
		return fmt.Errorf("natsbus: publish to %s: %w", subject, eventbus.ErrClosed)
	}
	if env.ID.IsZero() {
		// A zero ID would make the stream drop every later zero-ID event
		// as a duplicate of the first.
		return fmt.Errorf("natsbus: publish to %s: the envelope has a zero ID", subject)
	}
	msg := &nats.Msg{Subject: subject, Header: encodeHeader(env, t.cfg.stream), Data: env.Data}
	if t.async != nil {
		return t.async.publish(ctx, msg, env, subject)
	}
	if _, err := t.js.PublishMsg(ctx, msg); err != nil {
		if st := t.nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("natsbus: publish %s to %s (connection %v): %w", env.ID, subject, st, err)
		}
		return fmt.Errorf("natsbus: publish %s to %s: %w", env.ID, subject, err)
	}
	return nil
}

// Subscribe creates or binds the consumer described by opts and returns
// its Receiver:
//
//   - Group set: the durable consumer of that group and topic, shared by
//     every receiver of the group in any process; each event goes to one
//     of them.
//   - Name set (and no Group): the durable consumer of that name and topic.
//     It outlives the process and resumes after the last acknowledged
//     event. Receivers that share a Name share the consumer, as a group.
//   - neither: an ephemeral consumer for this receiver alone, deleted once
//     Stop has run and every delivery it handed out is settled.
//
// A new consumer starts with events published from now on, or with the
// last stored event of the topic if opts.Replay is set; an existing durable
// consumer resumes where it stopped, whatever Replay says. The receiver
// fetches a batch of messages ahead (WithPullBatch, or MaxInFlight if
// larger) and hands them out in stream order; MaxInFlight (default 1) is
// how many of them its callers work on at once, in this process. The
// consumer's MaxAckPending leaves room for 32 receivers each holding that
// much (see the package doc). AckWait defaults to DefaultAckWait. The
// settings of an existing durable consumer are updated to these. A negative
// MaxInFlight or AckWait gives an error wrapping eventbus.ErrInvalidOption,
// a bad topic one wrapping eventbus.ErrInvalidTopic.
func (t *transport) Subscribe(ctx context.Context, opts eventbus.SubscribeOptions) (eventbus.Receiver, error) {
	if err := checkTopic(opts.Topic); err != nil {
		return nil, fmt.Errorf("natsbus: subscribe: %w", err)
	}
	subject := t.subject + opts.Topic
	if opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("natsbus: subscribe to %s: %w: MaxInFlight %d is negative",
			subject, eventbus.ErrInvalidOption, opts.MaxInFlight)
	}
	if opts.AckWait < 0 {
		return nil, fmt.Errorf("natsbus: subscribe to %s: %w: AckWait %v is negative",
			subject, eventbus.ErrInvalidOption, opts.AckWait)
	}
	if t.closed.Load() {
		return nil, fmt.Errorf("natsbus: subscribe to %s: %w", subject, eventbus.ErrClosed)
	}
	r := newReceiver(t, subject, opts)
	ctx, cancel := t.bound(ctx)
	defer cancel()
	if err := r.start(ctx); err != nil {
		return nil, fmt.Errorf("natsbus: subscribe to %s as %s: %w", subject, r.name, err)
	}
	t.mu.Lock()
	closed := t.closed.Load()
	if !closed {
		t.receivers[r] = struct{}{}
	}
	t.mu.Unlock()
	if closed {
		r.abandon(ctx)
		return nil, fmt.Errorf("natsbus: subscribe to %s: %w", subject, eventbus.ErrClosed)
	}
	return r, nil
}

// OnPublishFailure implements eventbus.AsyncPublisher: with
// WithAsyncPublish, f is called for each event Publish accepted and the
// broker did not store (after the resends); until it is set, or without
// the bus, such events are logged. Without WithAsyncPublish, Publish
// reports every failure itself and f is never called.
func (t *transport) OnPublishFailure(f func(env *eventbus.Envelope, err error)) {
	if t.async != nil {
		t.async.onFailure(f)
	}
}

// Flush implements eventbus.AsyncPublisher: it blocks until every event
// Publish accepted so far is stored by the broker or reported failed, or
// ctx ends (it returns an error wrapping ctx's). It waits until no publish
// at all is outstanding, so while other goroutines keep publishing it
// returns at their first pause. Without WithAsyncPublish
// it returns nil at once: each Publish waited for its event to be stored.
func (t *transport) Flush(ctx context.Context) error {
	if t.async == nil {
		return nil
	}
	return t.async.flush(ctx)
}

// Close first waits, with WithAsyncPublish, for the acknowledgement of
// every publish outstanding, reporting each one still unacknowledged when
// ctx ends as failed. It then stops every receiver not yet stopped, as
// Stop does, and deletes the ephemeral consumers still waiting for
// deliveries to be settled;
// deliveries of durable consumers can still be settled afterwards. Publish
// and Subscribe fail with eventbus.ErrClosed once Close has begun. Close
// leaves the connection open and no goroutine of the transport running.
// If ctx ends first, Close returns an error wrapping ctx's; the broker
// deletes ephemeral consumers it could not reach after a minute without
// activity. Close may be called more than once.
func (t *transport) Close(ctx context.Context) error {
	t.mu.Lock()
	t.closed.Store(true)
	rs := make([]*receiver, 0, len(t.receivers))
	for r := range t.receivers {
		rs = append(rs, r)
	}
	t.mu.Unlock()
	ctx, cancel := t.bound(ctx)
	defer cancel()
	var errs []error
	if t.async != nil {
		if err := t.async.close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range rs {
		if err := r.stop(ctx, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forget drops a receiver that has nothing left to clean up.
func (t *transport) forget(r *receiver) {
	t.mu.Lock()
	delete(t.receivers, r)
	t.mu.Unlock()
}

// bound gives ctx the WithTimeout deadline if it has none.
func (t *transport) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, t.cfg.timeout)
}
