package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/quantumtrader/eventbus"
)

// capital is what the trading book starts with, in USDT.
const capital = 100_000.0

// newBus makes the bus of the trading system. It is the one place that
// chooses the bus: a transport (such as NATS JetStream) would be chosen
// here, and every component would run unchanged on it.
func newBus(logOutput io.Writer) (*eventbus.Bus, error) {
	logger := slog.New(slog.NewTextHandler(logOutput, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // the live view has its own clock
			}
			return a
		},
	}))
	return eventbus.New(eventbus.WithLogger(logger))
}

// system is the trading system: every component, each holding the bus
// topics it uses. Consumers subscribe in startConsumers and producers run in
// runProducers, so that a process could run one side only.
type system struct {
	cfg   config
	bus   *eventbus.Bus
	start time.Time

	market    *Market
	feed      *MarketFeed
	msc       *MSCAI
	orch      *Orchestrator
	risk      *RiskGuard
	balancer  *PortfolioBalancer
	generator *StrategyGenerator
	runtime   *StrategyRuntime
	learning  *ContinuousLearning
	ensemble  *EnsembleManager
	health    *HealthMonitor
	notifier  *Notifier
	ranker    *OpportunityRanker
	exec      *Executor
	analytics *Analytics
	metrics   *MetricsLogger
	incidents *IncidentLog
}

// The random streams of the components: one seed, an independent stream
// each, so that adding a draw in one component changes no other.
const (
	streamMarket = iota + 1
	streamFeed
	streamGenerator
	streamRuntime
	streamLearning
	streamNotifier
)

func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

func newSystem(bus *eventbus.Bus, cfg config) *system {
	start := time.Now()
	s := &system{cfg: cfg, bus: bus, start: start}
	s.market = newMarket(cfg.seed)
	s.feed = newMarketFeed(bus, s.market, cfg)
	s.msc = newMSCAI(bus, start, cfg.duration/20)
	s.orch = newOrchestrator(bus)
	s.risk = newRiskGuard(bus)
	s.balancer = newPortfolioBalancer(bus)
	s.ensemble = newEnsembleManager(bus)
	s.exec = newExecutor(bus, s.orch, s.risk, s.balancer, s.ensemble, cfg.duration/200)
	s.generator = newStrategyGenerator(bus, cfg.seed, cfg.duration/10)
	s.runtime = newStrategyRuntime(bus, s.exec, cfg.seed)
	s.learning = newContinuousLearning(bus, cfg.seed, cfg.duration/6)
	s.health = newHealthMonitor(bus, start)
	s.notifier = newNotifier(bus, cfg.seed)
	s.ranker = newOpportunityRanker(bus, len(s.market.Symbols)*20)
	s.analytics = newAnalytics(bus, start)
	s.metrics = newMetricsLogger(bus)
	s.incidents = newIncidentLog(bus)
	return s
}

// startConsumers subscribes every consumer. It runs before any producer,
// so each subscription exists from the first event on, which is what the
// delivery check relies on.
func (s *system) startConsumers() ([]*consumer, error) {
	w := &wiring{}
	for _, subscribe := range []func(*wiring) error{
		s.orch.subscribe, s.risk.subscribe, s.balancer.subscribe,
		s.msc.subscribe, s.generator.subscribe, s.runtime.subscribe,
		s.ensemble.subscribe, s.health.subscribe, s.notifier.subscribe,
		s.ranker.subscribe, s.analytics.subscribe, s.metrics.subscribe,
		s.incidents.subscribe,
	} {
		if err := subscribe(w); err != nil {
			return nil, err
		}
	}
	if n := s.bus.Stats().Published; n != 0 {
		return nil, fmt.Errorf("%d events were published before every consumer subscribed", n)
	}
	return w.consumers, nil
}

// runProducers runs the producers until ctx ends: first the strategies the
// session starts with and the first policy, then the market feed, the
// Strategy Generator's reviews, the Continuous Learning Manager's
// retraining and the MSC AI's reviews, each in its own goroutine. It
// returns when they all have.
func (s *system) runProducers(ctx context.Context) error {
	if err := s.generator.bootstrap(ctx); err != nil {
		return ignoreEnd(err)
	}
	if err := s.msc.publishFirstPolicy(ctx); err != nil {
		return ignoreEnd(err)
	}
	var g errgroup.Group
	g.Go(func() error { return ignoreEnd(s.feed.run(ctx)) })
	g.Go(func() error { return ignoreEnd(s.generator.run(ctx)) })
	g.Go(func() error { return ignoreEnd(s.learning.run(ctx)) })
	g.Go(func() error { return ignoreEnd(s.msc.run(ctx)) })
	return g.Wait()
}

// settle waits, once the producers have stopped, until the bus is quiet:
// no event queued, every delivery begun finished, and nothing published
// between two such looks. Handlers here publish in reaction to what they
// handle (a tick may make a trade, a trade a health change, a health
// change a policy), and Close refuses every publish once it begins, so the
// chains of reactions must run out first, or their last links would fail
// with ErrClosed. The bus has no call that waits for this, hence the
// polling of its statistics.
func (s *system) settle(ctx context.Context) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	quietAt := ^uint64(0) // Published at the last quiet look
	for {
		st := s.bus.Stats()
		quiet := st.QueueSize == 0 && st.Dispatched == st.Delivered+st.DeadLettered
		if quiet && st.Published == quietAt {
			return nil
		}
		quietAt = ^uint64(0)
		if quiet {
			quietAt = st.Published
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ignoreEnd drops the error a producer gets when the run ends under it.
func ignoreEnd(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// every calls f every d until ctx ends or f fails.
func every(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := f(ctx); err != nil {
				return err
			}
		}
	}
}

// wiring makes the subscriptions of the system and keeps, for each, the
// component's own count of the events its handler took: a witness of
// delivery kept apart from the bus's statistics.
type wiring struct {
	consumers []*consumer
}

// consumer is one subscription of a component.
type consumer struct {
	component string
	topic     string // "*" for SubscribeAll
	sub       *eventbus.Subscription
	handled   atomic.Uint64 // handler calls that returned nil
}

// on subscribes component's handler h to t, named after the component.
func on[T any](w *wiring, t *eventbus.Topic[T], component string, h eventbus.Handler[T], opts ...eventbus.SubOption) error {
	c := &consumer{component: component, topic: t.Name()}
	sub, err := t.Subscribe(func(ctx context.Context, ev eventbus.Event[T]) error {
		if err := h(ctx, ev); err != nil {
			return err
		}
		c.handled.Add(1)
		return nil
	}, append([]eventbus.SubOption{eventbus.Name(component)}, opts...)...)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", component, t.Name(), err)
	}
	c.sub = sub
	w.consumers = append(w.consumers, c)
	return nil
}

// onAll subscribes component's handler h to every topic of bus.
func onAll(w *wiring, bus *eventbus.Bus, component string, h eventbus.Handler[any], opts ...eventbus.SubOption) error {
	c := &consumer{component: component, topic: "*"}
	sub, err := eventbus.SubscribeAll(bus, func(ctx context.Context, ev eventbus.Event[any]) error {
		if err := h(ctx, ev); err != nil {
			return err
		}
		c.handled.Add(1)
		return nil
	}, append([]eventbus.SubOption{eventbus.Name(component)}, opts...)...)
	if err != nil {
		return fmt.Errorf("%s on every topic: %w", component, err)
	}
	c.sub = sub
	w.consumers = append(w.consumers, c)
	return nil
}
