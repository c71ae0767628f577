package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

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
	// subscribeAll is SubscribeAll's engine half, chosen in New (see
	// engine.go).
	subscribeAll func(*subscriber[any], subConfig) error
	// remoteAll are the SubscribeAll subscriptions on a Transport: each new
	// topic gets a receiver for each.
	remoteAll []*remoteSub[any]
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
	b.subscribeAll = subscribeAllRings
	if cfg.transport != nil {
		b.subscribeAll = subscribeAllRemote
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

// forget drops an unsubscribed subscription from the live set.
func (b *Bus) forget(s *Subscription) {
	b.mu.Lock()
	delete(b.live, s)
	b.remoteAll = slices.DeleteFunc(b.remoteAll, func(x *remoteSub[any]) bool { return x.Subscription == s })
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

func (b *Bus) topicList() []topicEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]topicEntry(nil), b.order...)
}
