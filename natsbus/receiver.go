package natsbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
)

// ephemeralInactivity is the InactiveThreshold of ephemeral consumers: how
// long the broker keeps one whose process went away without Stop.
const ephemeralInactivity = time.Minute

// memberRoom is how many receivers of one consumer (the members of a
// group, or processes sharing a Name) can each hold a full batch and their
// handlers' deliveries before the broker stops handing out events: the
// consumer's MaxAckPending is memberRoom times one receiver's share.
const memberRoom = 32

// maxAckPending is the MaxAckPending of a consumer whose receivers fetch
// batch messages ahead and handle inFlight at once: room for memberRoom
// of them, so that members of a group never wait for each other, and a
// member that dies holding its share leaves the others theirs.
func maxAckPending(batch, inFlight int) int {
	return memberRoom * (max(batch, inFlight) + inFlight)
}

// pullHeartbeat is how often the broker signals an idle pull request is
// alive. Two missed in a row make the receiver check that its consumer
// still exists, which bounds how long a lost consumer goes unnoticed.
const pullHeartbeat = 2 * time.Second

// firstRecheck and lastRecheck bound how long a wait on jetstream's
// iterator lasts before the receiver calls its Next again. The iterator
// asks the broker for more when its Next begins or wakes, but not while its
// goroutine is still sending the previous request (nats.go's checkPending
// skips while fetchInProgress is set, and nothing re-checks later). With
// a small batch that request is for few messages, and under CPU load the
// message can be handed out, settled and Next called again before the
// request is marked sent: that Next asks for nothing and waits on an inbox
// nothing will reach until two heartbeats are missed, stalling the
// subscription 2*pullHeartbeat each time. A new call asks. The waits double
// from firstRecheck to lastRecheck; after them the receiver waits as long
// as its caller lets it, so that the iterator's missed-heartbeat check,
// which each new call restarts, still runs.
const (
	firstRecheck = 10 * time.Millisecond
	lastRecheck  = 640 * time.Millisecond
)

// maxRecoverWait caps the wait between attempts to rebuild a consumer.
const maxRecoverWait = 5 * time.Second

// drainPoll is how often Drain asks the broker how far the consumer is,
// and how often Stop checks the connection while it waits for the end of
// a pull.
const drainPoll = 20 * time.Millisecond

// receiver implements eventbus.Receiver on a pull consumer, reading from
// a jetstream.MessagesContext that keeps a batch of messages fetched ahead
// (WithPullBatch), so that the broker's round trip is paid once per batch,
// not once per event.
type receiver struct {
	t         *transport
	subject   string
	name      string // the consumer's name
	durable   bool
	cfg       jetstream.ConsumerConfig // how to create the consumer
	pullOpts  []jetstream.PullMessagesOpt
	errClosed error

	// sem is held by whoever reads the iterator: one Next at a time, or
	// Stop. The iterator serialises Next with a mutex of its own, but a
	// goroutine waiting for that mutex cannot give up when its ctx ends;
	// one waiting for sem can.
	sem      chan struct{}
	done     chan struct{} // closed when Stop begins
	stopOnce sync.Once

	// Used only while holding sem.
	consumer jetstream.Consumer
	lastSeq  uint64 // stream sequence of the last message handed out, or where the consumer started - 1
	drained  bool

	mu        sync.Mutex
	iter      jetstream.MessagesContext // replaced while holding both sem and mu
	unsettled map[*delivery]struct{}    // handed out and not yet settled
	stopped   bool                      // Stop has drained the iterator
	deleted   bool                      // the ephemeral consumer is gone
}

func newReceiver(t *transport, subject string, opts eventbus.SubscribeOptions) *receiver {
	inFlight := cmp.Or(opts.MaxInFlight, 1)
	r := &receiver{
		t:       t,
		subject: subject,
		pullOpts: []jetstream.PullMessagesOpt{
			jetstream.PullMaxMessages(max(t.cfg.batch, inFlight)),
			jetstream.PullHeartbeat(pullHeartbeat),
		},
		errClosed: fmt.Errorf("natsbus: receive from %s: %w", subject, eventbus.ErrClosed),
		unsettled: make(map[*delivery]struct{}),
		sem:       make(chan struct{}, 1),
		done:      make(chan struct{}),
		cfg: jetstream.ConsumerConfig{
			DeliverPolicy: jetstream.DeliverNewPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cmp.Or(opts.AckWait, DefaultAckWait),
			MaxAckPending: maxAckPending(t.cfg.batch, inFlight),
			FilterSubject: subject,
		},
	}
	if opts.Replay {
		r.cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	}
	kind, id, what := kindGroup, opts.Group, "group"
	if id == "" {
		kind, id, what = kindName, opts.Name, "subscription"
	}
	if id == "" {
		r.name = ephemeralName(opts.Topic)
		r.cfg.Name = r.name
		r.cfg.InactiveThreshold = ephemeralInactivity
		r.cfg.Description = "eventbus ephemeral subscription of topic " + opts.Topic
		return r
	}
	r.name = consumerName(kind, opts.Topic, id)
	r.durable = true
	r.cfg.Durable = r.name
	r.cfg.Description = fmt.Sprintf("eventbus %s %.200q of topic %s", what, id, opts.Topic)
	return r
}

// start creates or binds the consumer and starts pulling.
func (r *receiver) start(ctx context.Context) error {
	c, err := r.bind(ctx, r.cfg)
	if err != nil {
		return err
	}
	it, err := c.Messages(r.pullOpts...)
	if err != nil {
		if !r.durable {
			_ = r.deleteConsumer(ctx)
		}
		return err
	}
	r.consumer = c
	r.lastSeq = c.CachedInfo().Delivered.Stream
	r.iter = it
	return nil
}

// bind creates the consumer with cfg, or binds to the durable consumer of
// that name if it exists (keeping where it is, updating its settings).
func (r *receiver) bind(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	stream := r.t.cfg.stream
	if !r.durable {
		return r.t.js.CreateConsumer(ctx, stream, cfg)
	}
	for {
		c, err := r.t.js.Consumer(ctx, stream, r.name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			c, err = r.t.js.CreateConsumer(ctx, stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) && ctx.Err() == nil {
				continue // another member of the group created it meanwhile
			}
			return c, err
		}
		if err != nil {
			return nil, err
		}
		cur := c.CachedInfo().Config
		if cur.FilterSubject != r.subject {
			return nil, fmt.Errorf("consumer %s exists with filter subject %q", r.name, cur.FilterSubject)
		}
		if cur.AckWait == cfg.AckWait && cur.MaxAckPending == cfg.MaxAckPending {
			return c, nil
		}
		cur.AckWait = cfg.AckWait
		cur.MaxAckPending = cfg.MaxAckPending
		return r.t.js.UpdateConsumer(ctx, stream, cur)
	}
}

// Next returns the next delivery of the consumer. It blocks until one
// arrives, ctx ends (it returns ctx's error) or Stop is called (it returns
// an error wrapping eventbus.ErrClosed, as it does once the connection is
// closed). Next hides what the broker recovers from: while the connection
// is reconnecting it waits, and if the consumer was lost (deleted by an
// operator, or by the broker after a long absence) Next recreates it,
// starting after the last event it handed out, and logs that it did. Next
// is safe for concurrent use; concurrent calls take turns.
func (r *receiver) Next(ctx context.Context) (eventbus.Delivery, error) {
	select {
	case <-r.done:
		return nil, r.errClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	case r.sem <- struct{}{}:
	}
	defer func() { <-r.sem }()
	var wait time.Duration
	for {
		if r.isDone() {
			return nil, r.errClosed
		}
		msg, err := r.pull(ctx)
		if err == nil {
			if r.isDone() {
				r.giveBack(msg)
				return nil, r.errClosed
			}
			return r.deliver(msg), nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if r.isDone() {
			return nil, r.errClosed
		}
		if r.t.nc.IsClosed() {
			return nil, fmt.Errorf("%w: %w", r.errClosed, nats.ErrConnectionClosed)
		}
		wait = r.recover(ctx, err, wait)
	}
}

// pull returns the iterator's next message, calling its Next again after
// each recheck interval (see firstRecheck) in case it missed asking the
// broker; the caller holds sem.
func (r *receiver) pull(ctx context.Context) (jetstream.Msg, error) {
	for wait := firstRecheck; wait <= lastRecheck; wait *= 2 {
		waitCtx, cancel := context.WithTimeout(ctx, wait)
		msg, err := r.iter.Next(jetstream.NextContext(waitCtx))
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return msg, err
		}
	}
	return r.iter.Next(jetstream.NextContext(ctx))
}

func (r *receiver) isDone() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// deliver turns a message into a Delivery; the caller holds sem.
func (r *receiver) deliver(msg jetstream.Msg) *delivery {
	d := &delivery{r: r, reply: msg.Reply(), attempt: 1}
	var stored time.Time
	if md, err := msg.Metadata(); err == nil {
		d.attempt = int(md.NumDelivered)
		stored = md.Timestamp
		r.lastSeq = max(r.lastSeq, md.Sequence.Stream)
	}
	d.env = decodeEnvelope(msg, r.t.subject, stored)
	r.mu.Lock()
	r.unsettled[d] = struct{}{}
	r.mu.Unlock()
	return d
}

// giveBack returns a message that was pulled but never handed out. A nak
// makes the broker offer it again at once, to this durable consumer's next
// receiver, rather than after AckWait; it still counts as a delivery
// attempt. An ephemeral consumer is about to be deleted, so its messages
// are simply dropped.
func (r *receiver) giveBack(msg jetstream.Msg) {
	if r.durable {
		_ = msg.Nak() // a plain publish: if lost, AckWait brings it back
	}
}

// recover deals with an error of the iterator that is not the end of ctx
// or of the receiver; the caller holds sem. The iterator rides out
// disconnections and missed heartbeats on its own; a consumer that no
// longer exists is recreated, and an iterator that gave up is replaced.
// wait is the pause after the previous failed attempt; recover returns the
// next one.
func (r *receiver) recover(ctx context.Context, cause error, wait time.Duration) time.Duration {
	ctx, cancel := r.t.bound(ctx)
	defer cancel()
	running := errors.Is(cause, jetstream.ErrNoHeartbeat)
	_, err := r.consumer.Info(ctx)
	gone := errors.Is(err, jetstream.ErrConsumerNotFound)
	if running && !gone {
		return 0
	}
	r.t.cfg.logger.Warn("natsbus: resuming consumer", "subject", r.subject, "consumer", r.name, "recreate", gone, "cause", cause)
	err = r.rebuild(ctx, gone)
	if err == nil {
		return 0
	}
	r.t.cfg.logger.Warn("natsbus: cannot resume consumer yet", "subject", r.subject, "consumer", r.name, "err", err)
	wait = min(max(2*wait, 100*time.Millisecond), maxRecoverWait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-r.done:
	}
	return wait
}

// rebuild replaces the iterator, first recreating the consumer if it is
// gone; the caller holds sem.
func (r *receiver) rebuild(ctx context.Context, gone bool) error {
	r.iter.Stop()
	c := r.consumer
	if gone {
		cfg := r.cfg
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = r.lastSeq + 1
		var err error
		if c, err = r.bind(ctx, cfg); err != nil {
			return err
		}
	}
	it, err := c.Messages(r.pullOpts...)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.consumer = c
	r.iter = it
	r.mu.Unlock()
	return nil
}

// Drain blocks until the consumer has settled every event the stream held
// for it when Drain was called: each acknowledged or rejected, by this
// receiver or, for a shared consumer (Group, or a Name used by several
// receivers), by another. It implements eventbus.Drainer, for the bus's
// Close. Drain asks the broker every 20ms how far the consumer's
// acknowledgements have come; failures to ask, as while the connection is
// reconnecting, are retried until ctx ends, and then Drain returns an
// error wrapping ctx's, naming the consumer. It returns an error wrapping
// eventbus.ErrClosed once Stop has been called.
func (r *receiver) Drain(ctx context.Context) error {
	var target uint64 // stream sequence of the last event to wait for; 0 until known
	var lastErr error
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		if r.isDone() {
			return r.errClosed
		}
		done, err := r.caughtUp(ctx, &target)
		if done {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-r.done:
			return r.errClosed
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("natsbus: drain consumer %s of %s: %w (last failure: %v)", r.name, r.subject, ctx.Err(), lastErr)
			}
			return fmt.Errorf("natsbus: drain consumer %s of %s: %w", r.name, r.subject, ctx.Err())
		case <-tick.C:
		}
	}
}

// caughtUp reports whether the consumer has settled everything up to
// *target, the stream sequence of the last message on its subject when it
// was first found behind.
func (r *receiver) caughtUp(ctx context.Context, target *uint64) (bool, error) {
	r.mu.Lock()
	c := r.consumer
	r.mu.Unlock()
	info, err := c.Info(ctx)
	if err != nil {
		return false, err
	}
	if info.NumPending == 0 && info.NumAckPending == 0 {
		return true, nil
	}
	if *target == 0 {
		msg, err := r.t.stream.GetLastMsgForSubject(ctx, r.subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return true, nil // the stream holds nothing for the consumer (it was purged)
		}
		if err != nil {
			return false, err
		}
		*target = msg.Sequence
	}
	return info.AckFloor.Stream >= *target, nil
}

// Stop ends the receiver. In order: Next stops handing out deliveries and
// returns an error wrapping eventbus.ErrClosed, now and from then on; the
// receiver stops pulling; messages it had pulled but not handed out go
// back to a durable consumer for redelivery (counting as an attempt), and
// so do deliveries handed out and not yet settled, so that the consumer's
// next receiver, in this process or another, gets them at once instead of
// after AckWait. Deliveries already handed out can still be settled (see
// delivery.giveBack for what a settlement then does). An ephemeral
// consumer is deleted as soon as they all are: by Stop if none is
// pending, else by the settlement of the last one, or by the transport's
// Close. A durable consumer stays on the broker, keeping its place.
//
// Stop waits for a Next in progress to return, and for the broker to
// confirm the end of the pull, unless the connection is down (the broker
// could not confirm it); if ctx ends first it returns an error wrapping
// ctx's, and Next returns ErrClosed all the same. Stop may be called more
// than once.
func (r *receiver) Stop(ctx context.Context) error {
	return r.stop(ctx, false)
}

// stop does Stop's work, then finishes the receiver as finish does with
// force: the transport's Close forces it.
func (r *receiver) stop(ctx context.Context, force bool) error {
	r.stopOnce.Do(func() { close(r.done) })
	r.mu.Lock()
	it := r.iter
	r.mu.Unlock()
	it.Drain() // wakes a Next waiting for a message
	ctx, cancel := r.t.bound(ctx)
	defer cancel()
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("natsbus: stop receiver of %s: %w", r.subject, ctx.Err())
	}
	err := r.drain(ctx)
	<-r.sem
	if err != nil {
		return fmt.Errorf("natsbus: stop receiver of %s: %w", r.subject, err)
	}
	if r.durable {
		r.giveBackUnsettled()
	}
	// Acks are plain publishes: make sure those sent so far, and the naks
	// of what was given back, reached the broker before the process may
	// go. A connection that is down has nothing it could flush: what it
	// lost comes back after AckWait.
	if r.t.nc.IsConnected() {
		if err := r.t.nc.FlushWithContext(ctx); err != nil && r.t.nc.IsConnected() {
			return fmt.Errorf("natsbus: stop receiver of %s: flushing acknowledgements: %w", r.subject, err)
		}
	}
	return r.finish(ctx, force)
}

// giveBackUnsettled returns every delivery handed out and not yet settled
// to the durable consumer (see delivery.giveBack), so that its next
// receiver gets the event at once rather than after AckWait; Next hands
// out nothing more by then.
func (r *receiver) giveBackUnsettled() {
	r.mu.Lock()
	ds := slices.Collect(maps.Keys(r.unsettled))
	r.mu.Unlock()
	for _, d := range ds {
		d.giveBack()
	}
}

// drain ends the current iterator and gives back what it had buffered; the
// caller holds sem. The iterator ends once the broker confirms the end of
// its pull, which cannot happen while the connection is down: drain then
// stops the iterator instead of waiting, every drainPoll, so that a Stop
// or Close with the broker gone returns rather than wait out its ctx. The
// broker lets the pull request expire by itself.
func (r *receiver) drain(ctx context.Context) error {
	if r.drained {
		return nil
	}
	it := r.iter
	it.Drain()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, drainPoll)
		msg, err := it.Next(jetstream.NextContext(waitCtx))
		cancel()
		if err == nil {
			r.giveBack(msg)
			continue
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			break // drained
		}
		if r.t.nc.Status() != nats.CONNECTED {
			it.Stop()
			break
		}
	}
	r.drained = true
	return nil
}

// finish lets the transport forget a stopped receiver, deleting its
// ephemeral consumer once no delivery awaits settlement, or at once if
// force.
func (r *receiver) finish(ctx context.Context, force bool) error {
	if r.durable {
		r.t.forget(r)
		return nil
	}
	r.mu.Lock()
	r.stopped = true
	wait := len(r.unsettled) > 0 && !force
	r.mu.Unlock()
	if wait {
		return nil
	}
	return r.deleteConsumer(ctx)
}

// settled records that d was settled, deleting a stopped ephemeral
// consumer when it was the last one pending.
func (r *receiver) settled(ctx context.Context, d *delivery) {
	r.mu.Lock()
	delete(r.unsettled, d)
	last := r.stopped && len(r.unsettled) == 0 && !r.durable
	r.mu.Unlock()
	if last {
		if err := r.deleteConsumer(ctx); err != nil {
			r.t.cfg.logger.Warn("natsbus: cannot delete ephemeral consumer; the transport's Close or the broker will",
				"subject", r.subject, "consumer", r.name, "err", err)
		}
	}
}

func (r *receiver) deleteConsumer(ctx context.Context) error {
	r.mu.Lock()
	deleted := r.deleted
	r.mu.Unlock()
	if deleted {
		return nil
	}
	// js bounds a ctx without deadline by WithTimeout (WithDefaultTimeout).
	err := r.t.js.DeleteConsumer(ctx, r.t.cfg.stream, r.name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("natsbus: delete consumer %s of %s: %w", r.name, r.subject, err)
	}
	r.mu.Lock()
	r.deleted = true
	r.mu.Unlock()
	r.t.forget(r)
	return nil
}

// abandon undoes a receiver that was started but never handed to anyone.
func (r *receiver) abandon(ctx context.Context) {
	_ = r.stop(ctx, true)
}
