package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/quantumtrader/eventbus/internal/hist"
	"github.com/quantumtrader/eventbus/internal/idgen"
)

// Bus is the registry of topics and the owner of every delivery goroutine.
// Create one with New and stop it with Close. A Bus is safe for concurrent use.
type Bus struct {
	cfg    config
	logger *slog.Logger
	ids    idgen.Root

	mu     sync.Mutex // guards topics, order, live, watching, and writes of all
	topics map[string]topicEntry
	order  []topicEntry
	all    atomic.Pointer[subList[any]] // SubscribeAll subscriptions
	live   map[*Subscription]struct{}
	retAll retiredStats // what SubscribeAll subscriptions that left counted
	// remoteAll are the SubscribeAll subscriptions on a Transport: each new
	// topic gets a receiver for each.
	remoteAll []*subscriber[any]
	watching  bool // the stall watcher runs
	workers   errgroup.Group

	// Handlers of asynchronous subscriptions get handlerCtx, marked so that
	// their publishes pass while Close drains the bus; Close cancels it.
	handlerCtx context.Context
	cancel     context.CancelFunc
	sealed     atomic.Bool // Close found the bus quiet: handlers' publishes are refused too

	closed        atomic.Bool   // set once by Close: intake stops
	closing       chan struct{} // closed with closed set
	quietMu       sync.Mutex
	quiet         chan struct{} // closed, and replaced, when a topic's last in-flight publish finishes after Close began
	aborted       atomic.Bool   // Close's ctx ended: queued events are given up
	closeOnce     sync.Once
	drainOnce     sync.Once
	stopOnce      sync.Once
	transportOnce sync.Once
	stopWatch     chan struct{}
	workersDone   chan struct{}

	failedPublishes atomic.Uint64 // events an AsyncPublisher's broker did not store
}

// New returns a running bus configured by opts. An invalid option is an
// error wrapping ErrInvalidOption. The bus starts no goroutine until the
// first subscription.
func New(opts ...Option) (*Bus, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	b := &Bus{
		retAll:      retiredStats{retiring: map[*Subscription]struct{}{}},
		cfg:         cfg,
		logger:      cfg.logger,
		ids:         idgen.NewRoot(),
		topics:      make(map[string]topicEntry),
		live:        make(map[*Subscription]struct{}),
		closing:     make(chan struct{}),
		quiet:       make(chan struct{}),
		stopWatch:   make(chan struct{}),
		workersDone: make(chan struct{}),
	}
	if b.logger == nil {
		b.logger = slog.Default()
	}
	b.handlerCtx, b.cancel = context.WithCancel(context.Background())
	b.handlerCtx = context.WithValue(b.handlerCtx, handlerKey{}, b)
	if ap, ok := cfg.transport.(AsyncPublisher); ok {
		ap.OnPublishFailure(b.publishFailed)
	}
	return b, nil
}

func (b *Bus) subConfig(opts []SubOption) (subConfig, error) {
	cfg := subConfig{queueSize: b.cfg.queueSize, concurrency: 1, maxAttempts: 1}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return cfg, err
		}
	}
	switch {
	case cfg.sync && cfg.buffered != "":
		return cfg, fmt.Errorf("%w: Sync() has no buffer, so %s does not apply", ErrInvalidOption, cfg.buffered)
	case b.cfg.transport != nil && cfg.local != "":
		return cfg, fmt.Errorf("%w: %s needs the in-memory bus, not a transport: %w", ErrInvalidOption, cfg.local, errors.ErrUnsupported)
	case b.cfg.transport == nil && cfg.group != "":
		return cfg, fmt.Errorf("%w: Group needs a transport (WithTransport): %w", ErrInvalidOption, errors.ErrUnsupported)
	case b.cfg.transport == nil && cfg.ackWait != 0:
		return cfg, fmt.Errorf("%w: AckWait needs a transport (WithTransport): %w", ErrInvalidOption, errors.ErrUnsupported)
	}
	return cfg, nil
}

// attach registers a new subscription: join adds it to its list under the
// list's lock and returns the events a Sync Replay must deliver; then the
// workers start.
func attach[T any](b *Bus, s *subscriber[T], join func() []Event[T]) error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return ErrClosed
	}
	b.live[s.Subscription] = struct{}{}
	replay := join()
	if !s.sync {
		s.start()
	}
	if !b.watching {
		b.watching = true
		b.workers.Go(func() error {
			b.watchStalls()
			return nil
		})
	}
	b.mu.Unlock()
	if len(replay) > 0 {
		s.replaySync(replay)
	}
	return nil
}

// attachRemote registers a new subscription on a Transport: join adds it to
// its list and starts its receivers, under b.mu. If join fails, it has taken
// the subscription off its lists again; the receivers it started are
// stopped here.
func attachRemote[T any](b *Bus, s *subscriber[T], join func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	s.startKeeper()
	if err := join(); err != nil {
		_ = s.stopReceivers() // logged; nothing was delivered yet
		return err
	}
	b.live[s.Subscription] = struct{}{}
	return nil
}

// forget drops an unsubscribed subscription from the live set.
func (b *Bus) forget(s *Subscription) {
	b.mu.Lock()
	delete(b.live, s)
	b.remoteAll = slices.DeleteFunc(b.remoteAll, func(x *subscriber[any]) bool { return x.Subscription == s })
	b.mu.Unlock()
}

func (b *Bus) liveList() []*Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Subscription, 0, len(b.live))
	for s := range b.live {
		out = append(out, s)
	}
	return out
}

// retired returns where the final counts of a subscription of topic go.
func (b *Bus) retired(topic string) *retiredStats {
	if topic == "*" {
		return &b.retAll
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return &b.topics[topic].core().retired
}

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
			t.closeRing()
		}
		for _, s := range b.liveList() {
			s.typed.closeQueue()
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
			if err := s.typed.drain(ctx); err != nil {
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
		_ = s.typed.discard(true) // logged; a transport's broker keeps what was not settled
	}
	for _, t := range b.topicList() {
		t.closeRing()
	}
	return err
}

func (b *Bus) topicList() []topicEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]topicEntry(nil), b.order...)
}

// Topics returns a snapshot of every topic's statistics, sorted by name.
func (b *Bus) Topics() []TopicStats {
	topics := b.topicList()
	out := make([]TopicStats, 0, len(topics))
	for _, t := range topics {
		out = append(out, t.Stats())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stats returns a snapshot of the bus's counters. Each counter is read
// atomically, but not all at the same instant.
func (b *Bus) Stats() Stats {
	var st Stats
	var sum Counts
	for _, t := range b.topicList() { // unsorted: the sums do not care
		ts := t.Stats()
		st.Published += ts.Published
		st.NoSubscribers += ts.NoSubscribers
		st.QueueSize += ts.QueueSize
		sum.add(ts.Counts)
		if len(ts.Subscriptions) > 0 {
			st.HandlerTypes++
		}
		st.TotalHandlers += len(ts.Subscriptions)
	}
	all, _ := b.retAll.load(b.all.Load().each, func(s *Subscription) (Counts, hist.Snapshot) {
		ss, sl := s.stats()
		st.QueueSize += ss.QueueLen
		st.TotalHandlers++
		return ss.Counts, sl
	})
	sum.add(all)
	st.Counts = sum
	st.PublishFailed = b.failedPublishes.Load()
	return st
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
