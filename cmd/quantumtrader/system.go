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

	"github.com/nats-io/nats.go"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
)

// capital is what the trading book starts with, in USDT.
const capital = 100_000.0

// newBus makes the bus of the trading system. It is the one place that
// chooses the bus: in memory, or over NATS JetStream with -nats, and every
// component runs unchanged on either. disconnect closes the NATS
// connection, once the bus is closed.
// asyncWindow is how many of the demo's publishes may await the broker's
// acknowledgement over NATS.
const asyncWindow = 4096

func newBus(cfg config, logOutput io.Writer) (bus *eventbus.Bus, disconnect func(), err error) {
	logger := slog.New(slog.NewTextHandler(logOutput, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // the live view has its own clock
			}
			return a
		},
	}))
	if cfg.natsURL == "" {
		bus, err = eventbus.New(eventbus.WithLogger(logger))
		return bus, func() {}, err
	}
	nc, err := nats.Connect(cfg.natsURL,
		nats.Name("quantumtrader "+string(cfg.role)),
		nats.MaxReconnects(-1), // ride out a broker restart; Publish reports the outage
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", cfg.natsURL, err)
	}
	// The market feed publishes thousands of ticks a second: it waits for
	// the broker's acknowledgements in a window rather than one by one.
	// What the broker does not store is reported through the bus and fails
	// the delivery check.
	tr, err := natsbus.New(nc, natsbus.WithStream(cfg.stream), natsbus.WithSubjectPrefix(cfg.prefix),
		natsbus.WithLogger(logger), natsbus.WithAsyncPublish(asyncWindow))
	if err == nil {
		bus, err = eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(logger))
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return bus, nc.Close, nil
}

// system is the trading system: every component, each holding the bus
// topics it uses. Consumers subscribe in startConsumers and producers run in
// runProducers, so that a process could run one side only.
type system struct {
	cfg   config
	bus   *eventbus.Bus
	start time.Time

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

// consumersSession is the market session the consumers' role assumes for
// the cadences of its components: its -duration says how long it
// listens, and the producers' is unknown to it; this is their default.
const consumersSession = 10 * time.Second

func newSystem(bus *eventbus.Bus, cfg config) *system {
	start := time.Now()
	s := &system{cfg: cfg, bus: bus, start: start}
	session := cfg.duration
	if cfg.role == roleConsumers {
		session = consumersSession
	}
	market := newMarket(cfg.seed)
	s.feed = newMarketFeed(bus, market, cfg)
	s.msc = newMSCAI(bus, start, session/20)
	s.orch = newOrchestrator(bus)
	s.risk = newRiskGuard(bus)
	s.balancer = newPortfolioBalancer(bus)
	s.ensemble = newEnsembleManager(bus)
	s.exec = newExecutor(bus, s.orch, s.risk, s.balancer, s.ensemble, session/200)
	s.generator = newStrategyGenerator(bus, cfg.seed, cfg.duration/10)
	s.runtime = newStrategyRuntime(bus, s.exec, cfg.seed)
	s.learning = newContinuousLearning(bus, cfg.seed, cfg.duration/6)
	s.health = newHealthMonitor(bus, start)
	s.notifier = newNotifier(bus, cfg.seed)
	s.ranker = newOpportunityRanker(bus, len(market.Symbols)*20)
	s.analytics = newAnalytics(bus, start)
	s.metrics = newMetricsLogger(bus)
	s.incidents = newIncidentLog(bus)
	return s
}

// The roles split the components in two. The producers are the sources
// of the system's events: the market feed, and the Strategy Generator and
// the Continuous Learning Manager, which invent strategies and models on
// their own cadence. The consumers are the components that react to
// events, the MSC AI included: it decides on what it hears of the health,
// the strategies and the trades, so its policies come from where its
// subscriptions are. The Strategy Generator also follows the trades, to
// retire losing strategies, so the producers' process has that one
// subscription.

// startConsumers subscribes the consumers of the process's role. It runs
// before any producer, so each subscription exists from the first event
// on, which is what the delivery check relies on.
func (s *system) startConsumers() ([]*consumer, error) {
	w := &wiring{remote: s.cfg.natsURL != ""}
	components := []interface{ subscribe(*wiring) error }{
		s.orch, s.risk, s.balancer, s.msc, s.generator, s.runtime,
		s.ensemble, s.health, s.notifier, s.ranker, s.analytics, s.metrics,
		s.incidents,
	}
	for _, c := range components {
		// A split role subscribes its side only; the Strategy Generator's
		// is the producers' one subscription.
		if producer := c == s.generator; s.cfg.role != roleAll && producer != (s.cfg.role == roleProducers) {
			continue
		}
		if err := c.subscribe(w); err != nil {
			return nil, err
		}
	}
	if n := s.bus.Stats().Published; n != 0 {
		return nil, fmt.Errorf("%d events were published before every consumer subscribed", n)
	}
	return w.consumers, nil
}

// runProducers runs what starts events in the process's role until ctx
// ends, and returns when all of it has. In the role all: first the
// strategies the session starts with and the first policy, then the
// market feed, the Strategy Generator's reviews, the Continuous Learning
// Manager's retraining and the MSC AI's reviews, each in its own
// goroutine. The producers' role runs the same without the MSC AI, the
// consumers' role the MSC AI alone.
func (s *system) runProducers(ctx context.Context) error {
	sources := s.cfg.role != roleConsumers
	controller := s.cfg.role != roleProducers
	if sources {
		if err := s.generator.bootstrap(ctx); err != nil {
			return ignoreEnd(err)
		}
	}
	if controller {
		if err := s.msc.publishFirstPolicy(ctx); err != nil {
			return ignoreEnd(err)
		}
	}
	var g errgroup.Group
	if sources {
		g.Go(func() error { return ignoreEnd(s.feed.run(ctx)) })
		g.Go(func() error { return ignoreEnd(s.generator.run(ctx)) })
		g.Go(func() error { return ignoreEnd(s.learning.run(ctx)) })
	}
	if controller {
		g.Go(func() error { return ignoreEnd(s.msc.run(ctx)) })
	}
	return g.Wait()
}

// settle waits, once the producers have stopped, until the bus is quiet:
// every delivery begun finished, nothing published between two looks,
// and nothing left to come. Handlers here publish in reaction to what they
// handle (a tick may make a trade, a trade a health change, a health
// change a policy), and Close refuses every publish once it begins, so the
// chains of reactions must run out first, or their last links would fail
// with ErrClosed. The bus has no call that waits for this, hence the
// polling of its statistics.
//
// What "nothing left to come" means depends on where the events wait: in
// memory, no queue holds any; over NATS the backlog is on the broker, so
// in the role all each subscription must have handled at least what this
// process published on its topics, and in the consumers role, where that
// is unknown, the deliveries must have stopped for a while.
func (s *system) settle(ctx context.Context, consumers []*consumer) error {
	if s.cfg.role == roleProducers {
		return nil // its one handler publishes nothing: Close drains it
	}
	every := 2 * time.Millisecond
	if s.cfg.natsURL != "" {
		every = 100 * time.Millisecond // a look is not free, and deliveries come in round trips
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last look
	quietBefore := false
	for {
		st := s.bus.Stats()
		quiet := st.QueueSize == 0 && st.Dispatched == st.Delivered+st.DeadLettered && s.caughtUp(consumers)
		if s.cfg.role == roleConsumers {
			quiet = quiet && st.Dispatched == last.dispatched
		}
		if quiet && quietBefore && st.Published == last.published {
			return nil
		}
		quietBefore, last = quiet, look{published: st.Published, dispatched: st.Dispatched}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// look is what settle compares between two looks at the statistics.
type look struct{ published, dispatched uint64 }

// caughtUp reports whether, over NATS in the role all, every subscription
// has handled at least what this process published on its topics; the
// broker holds the rest of the backlog, where Stats cannot see it. It is
// always true in memory, where the queues show the backlog, and in the
// consumers role, which does not know what was published.
func (s *system) caughtUp(consumers []*consumer) bool {
	if s.cfg.natsURL == "" || s.cfg.role != roleAll {
		return true
	}
	want := owed(s.bus.Topics())
	for _, c := range consumers {
		if st := c.sub.Stats(); st.Delivered+st.DeadLettered < want(c.sub.Topic()) {
			return false
		}
	}
	return true
}

// owed returns what a subscription to a topic ("*" for SubscribeAll) was
// owed: the events published on the topic, or on every topic.
func owed(topics []eventbus.TopicStats) func(topic string) uint64 {
	published := map[string]uint64{}
	var all uint64
	for _, t := range topics {
		published[t.Name] = t.Published
		all += t.Published
	}
	return func(topic string) uint64 {
		if topic == "*" {
			return all
		}
		return published[topic]
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
	remote    bool // over NATS: the options that need one process are not available
	consumers []*consumer
}

// consumer is one subscription of a component, named after it.
type consumer struct {
	sub     *eventbus.Subscription
	handled atomic.Uint64 // handler calls that returned nil
}

// counted wraps h so that c counts the calls that return nil.
func counted[T any](c *consumer, h eventbus.Handler[T]) eventbus.Handler[T] {
	return func(ctx context.Context, ev eventbus.Event[T]) error {
		if err := h(ctx, ev); err != nil {
			return err
		}
		c.handled.Add(1)
		return nil
	}
}

// on subscribes component's handler h to t, named after the component.
func on[T any](w *wiring, t *eventbus.Topic[T], component string, h eventbus.Handler[T], opts ...eventbus.SubOption) error {
	c := &consumer{}
	sub, err := t.Subscribe(counted(c, h), append([]eventbus.SubOption{eventbus.Name(component)}, opts...)...)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", component, t.Name(), err)
	}
	c.sub = sub
	w.consumers = append(w.consumers, c)
	return nil
}

// onAll subscribes component's handler h to every topic of bus.
func onAll(w *wiring, bus *eventbus.Bus, component string, h eventbus.Handler[any], opts ...eventbus.SubOption) error {
	c := &consumer{}
	sub, err := eventbus.SubscribeAll(bus, counted(c, h), append([]eventbus.SubOption{eventbus.Name(component)}, opts...)...)
	if err != nil {
		return fmt.Errorf("%s on every topic: %w", component, err)
	}
	c.sub = sub
	w.consumers = append(w.consumers, c)
	return nil
}
