package main

import (
	"fmt"
	"time"

	"github.com/quantumtrader/eventbus"
)

// Summary is the outcome of a run, printed as text or, with -json, as JSON.
type Summary struct {
	Role          role              `json:"role"`
	NATS          string            `json:"nats,omitempty"`   // the server's URL; "" in memory
	Stream        string            `json:"stream,omitempty"` // with NATS
	Seed          uint64            `json:"seed"`
	Rate          int               `json:"rate"`
	Duration      float64           `json:"duration_s"`
	Elapsed       float64           `json:"elapsed_s"`
	Interrupted   bool              `json:"interrupted"` // by Ctrl-C
	CloseError    string            `json:"close_error,omitempty"`
	Bus           BusTotals         `json:"bus"`
	Topics        []TopicRow        `json:"topics"`
	Subscriptions []SubscriptionRow `json:"subscriptions"`
	Components    Components        `json:"components"`
	Scenario      Scenario          `json:"scenario"`
	Delivery      Delivery          `json:"delivery"`
	Timeline      []TimelineEntry   `json:"timeline"`
}

// BusTotals are the bus's counters (eventbus.Stats).
type BusTotals struct {
	Published    uint64 `json:"published"`
	Dispatched   uint64 `json:"dispatched"`
	Delivered    uint64 `json:"delivered"`
	Errors       uint64 `json:"errors"`
	Retries      uint64 `json:"retries"`
	DeadLettered uint64 `json:"dead_lettered"`
	Dropped      uint64 `json:"dropped"`
	Undelivered  uint64 `json:"undelivered"`
	// PublishFailed counts events Publish accepted over NATS that the
	// broker then did not store (the demo publishes asynchronously).
	PublishFailed uint64 `json:"publish_failed"`
}

// TopicRow is one topic's figures (eventbus.TopicStats). Deliveries,
// latencies and high-water marks cover the topic's own subscriptions, not
// the SubscribeAll ones.
type TopicRow struct {
	Name         string  `json:"name"`
	Published    uint64  `json:"published"`
	PerSecond    float64 `json:"events_per_s"`
	Delivered    uint64  `json:"delivered"`
	Retries      uint64  `json:"retries"`
	DeadLettered uint64  `json:"dead_lettered"`
	HighWater    int     `json:"high_water"`
	P50          float64 `json:"p50_us"`
	P99          float64 `json:"p99_us"`
}

// SubscriptionRow is one subscription's figures (eventbus.SubscriptionStats)
// beside what it should have received and what its handler counted.
type SubscriptionRow struct {
	Component    string  `json:"component"`
	Topic        string  `json:"topic"`    // "*" for SubscribeAll
	Expected     uint64  `json:"expected"` // events published on its topics
	Dispatched   uint64  `json:"dispatched"`
	Delivered    uint64  `json:"delivered"`
	Handled      uint64  `json:"handled"` // the component's own count of successful handler calls
	Errors       uint64  `json:"errors"`
	Retries      uint64  `json:"retries"`
	DeadLettered uint64  `json:"dead_lettered"`
	Dropped      uint64  `json:"dropped"`
	Undelivered  uint64  `json:"undelivered"`
	HighWater    int     `json:"high_water"`
	P50          float64 `json:"p50_us"`
	P99          float64 `json:"p99_us"`
}

// Components are the final states of the components.
type Components struct {
	MarketFeed         FeedState         `json:"market_feed"`
	MSCAI              MSCAIState        `json:"msc_ai"`
	Orchestrator       OrchestratorState `json:"orchestrator"`
	RiskGuard          RiskGuardState    `json:"risk_guard"`
	PortfolioBalancer  BalancerState     `json:"portfolio_balancer"`
	StrategyGenerator  GeneratorState    `json:"strategy_generator"`
	StrategyRuntime    RuntimeState      `json:"strategy_runtime"`
	ContinuousLearning LearningState     `json:"continuous_learning"`
	EnsembleManager    EnsembleState     `json:"ensemble_manager"`
	HealthMonitor      HealthState       `json:"health_monitor"`
	Notifier           NotifierState     `json:"notifier"`
	OpportunityRanker  RankerState       `json:"opportunity_ranker"`
	Executor           ExecutorState     `json:"executor"`
	Analytics          AnalyticsState    `json:"analytics"`
	MetricsLogger      LoggerState       `json:"metrics_logger"`
	IncidentLog        IncidentState     `json:"incident_log"`
}

// namedComponent is a component's name and final state.
type namedComponent struct {
	name  string
	state fmt.Stringer
}

// runsIn reports whether the component runs in role r: the producers are
// the sources of events, the consumers the others (see startConsumers).
func (c namedComponent) runsIn(r role) bool {
	switch c.state.(type) {
	case FeedState, GeneratorState, LearningState:
		return r != roleConsumers
	}
	return r != roleProducers
}

// named lists the components with their names, in the order of the
// summary.
func (c Components) named() []namedComponent {
	return []namedComponent{
		{"Market feed", c.MarketFeed}, {"MSC AI", c.MSCAI}, {"Orchestrator", c.Orchestrator},
		{"Risk Guard", c.RiskGuard}, {"Portfolio Balancer", c.PortfolioBalancer},
		{"Strategy Generator", c.StrategyGenerator}, {"Strategy Runtime", c.StrategyRuntime},
		{"Opportunity Ranker", c.OpportunityRanker}, {"Executor", c.Executor},
		{"Continuous Learning", c.ContinuousLearning}, {"Ensemble Manager", c.EnsembleManager},
		{"Health Monitor", c.HealthMonitor}, {"Notifier", c.Notifier}, {"Incident Log", c.IncidentLog},
		{"Analytics", c.Analytics}, {"Metrics Logger", c.MetricsLogger},
	}
}

// Scenario says whether the drawdown scenario played out: the crash drove
// the health to CRITICAL, the MSC AI turned DEFENSIVE, the Orchestrator and
// the Risk Guard tightened, and the Executor bought less often.
type Scenario struct {
	CrashStart             float64 `json:"crash_start_s"` // market time
	MarketEnd              float64 `json:"market_end_s"`  // market time of the last tick
	CrashDepth             float64 `json:"crash_depth"`
	MaxDrawdown            float64 `json:"max_drawdown"`
	CriticalAt             float64 `json:"critical_at_s"`  // 0 if never
	DefensiveAt            float64 `json:"defensive_at_s"` // 0 if never
	OrchestratorTightened  bool    `json:"orchestrator_tightened"`
	RiskGuardTightened     bool    `json:"risk_guard_tightened"`
	BuysPerSecondNormal    float64 `json:"buys_per_s_normal"`
	BuysPerSecondDefensive float64 `json:"buys_per_s_defensive"`
	Happened               bool    `json:"happened"`
}

func scenarioOf(c Components, r role) Scenario {
	s := Scenario{
		CrashStart: c.MarketFeed.CrashStart, MarketEnd: c.MarketFeed.MarketTime, CrashDepth: c.MarketFeed.CrashDepth,
		MaxDrawdown: c.HealthMonitor.MaxDrawdown,
		CriticalAt:  c.HealthMonitor.CriticalAt, DefensiveAt: c.MSCAI.DefensiveAt,
		OrchestratorTightened:  c.Orchestrator.SawDefensive,
		RiskGuardTightened:     c.RiskGuard.SawDefensive,
		BuysPerSecondNormal:    c.Executor.ByMode[eventbus.RiskModeNormal].BuysPerSecond,
		BuysPerSecondDefensive: c.Executor.ByMode[eventbus.RiskModeDefensive].BuysPerSecond,
	}
	// The consumers' process does not run the market, so it cannot tell
	// when the crash began; its times count from its own start.
	crashFirst := r == roleConsumers || s.CriticalAt >= s.CrashStart
	s.Happened = r != roleProducers && s.CriticalAt > 0 && crashFirst &&
		s.DefensiveAt >= s.CriticalAt && s.OrchestratorTightened && s.RiskGuardTightened &&
		c.Executor.ByMode[eventbus.RiskModeDefensive].Seconds > 0 &&
		s.BuysPerSecondDefensive < s.BuysPerSecondNormal
	return s
}

// Delivery is the result of the delivery check.
type Delivery struct {
	OK            bool      `json:"ok"`
	Check         checkKind `json:"check"` // what was checked, which depends on the role and the bus
	Subscriptions int       `json:"subscriptions"`
	Expected      uint64    `json:"expected"`          // deliveries owed: events this process published times subscriptions
	Delivered     uint64    `json:"delivered"`         // handled successfully
	DeadLettered  uint64    `json:"dead_lettered"`     // handled, failed every attempt, published as dead letters
	Skipped       string    `json:"skipped,omitempty"` // why the loss check did not run
	Problems      []string  `json:"problems,omitempty"`
}

// checkKind is what the delivery check can know where the process runs.
type checkKind string

const (
	// checkExact: in memory, every subscription received exactly every
	// event published on its topics.
	checkExact checkKind = "exact"
	// checkAtLeastOnce: over NATS, with the whole system in the process,
	// every subscription handled at least every event this process
	// published on its topics. Delivery is at least once, and a durable
	// subscription may also get its backlog from an earlier run, or
	// events of another process on the stream.
	checkAtLeastOnce checkKind = "at least once"
	// checkHandled: in the consumers role the events were published by
	// another process, so what each subscription was owed is unknown
	// here; every delivery must have been handled or dead-lettered, and
	// none dropped.
	checkHandled checkKind = "handled"
	// checkStored: in the producers role every event Publish accepted
	// was stored by the stream (by the time Close returned: the demo
	// publishes asynchronously over NATS, and counts what was not stored); its one subscription (the Strategy
	// Generator's, on the trades the consumers publish) is checked as in
	// checkHandled.
	checkStored checkKind = "stored"
)

// kindOf returns the check that fits a process.
func kindOf(cfg config) checkKind {
	switch {
	case cfg.role == roleProducers:
		return checkStored
	case cfg.role == roleConsumers:
		return checkHandled
	case cfg.natsURL != "":
		return checkAtLeastOnce
	}
	return checkExact
}

// checkDelivery checks that every subscription received every event
// published on its topics, and that each was either handled or, after its
// last failed attempt, dead-lettered: nothing dropped, abandoned or missing.
// It compares three independent counts: the topics' Published, the
// subscriptions' statistics, and the components' own counts of what their
// handlers took. kind says how much of that the process can know;
// publishFailed is the bus's count of events Publish accepted and the
// broker did not store.
func checkDelivery(rows []SubscriptionRow, closeErr error, kind checkKind, publishFailed uint64) Delivery {
	d := Delivery{Check: kind, Subscriptions: len(rows)}
	if publishFailed > 0 { // accepted, then refused or never acknowledged by the broker: lost
		d.Problems = append(d.Problems, fmt.Sprintf("the broker did not store %d published events (see the log)", publishFailed))
	}
	switch kind {
	case checkHandled:
		d.Skipped = "the events were published by another process, so this one cannot know how many each subscription was owed; " +
			"the broker keeps what a durable subscription did not handle for its next run"
	case checkStored:
		d.Skipped = "the events go to the consumers' process, which checks what it handled"
	}
	if closeErr != nil {
		d.Problems = append(d.Problems, fmt.Sprintf("Close gave up: %v", closeErr))
	}
	for _, r := range rows {
		d.Expected += r.Expected
		d.Delivered += r.Delivered
		d.DeadLettered += r.DeadLettered
		who := fmt.Sprintf("%s on %s", r.Component, r.Topic)
		switch kind {
		case checkExact:
			if r.Dispatched != r.Expected {
				d.Problems = append(d.Problems, fmt.Sprintf("%s: %d of %d events dispatched", who, r.Dispatched, r.Expected))
			}
			if r.Delivered+r.DeadLettered != r.Expected {
				d.Problems = append(d.Problems, fmt.Sprintf("%s: %d delivered and %d dead-lettered of %d published",
					who, r.Delivered, r.DeadLettered, r.Expected))
			}
		case checkAtLeastOnce:
			if r.Delivered+r.DeadLettered < r.Expected {
				d.Problems = append(d.Problems, fmt.Sprintf("%s: %d delivered and %d dead-lettered of %d published",
					who, r.Delivered, r.DeadLettered, r.Expected))
			}
		case checkHandled, checkStored:
			if r.Delivered+r.DeadLettered < r.Dispatched {
				d.Problems = append(d.Problems, fmt.Sprintf("%s: %d delivered and %d dead-lettered of %d dispatched",
					who, r.Delivered, r.DeadLettered, r.Dispatched))
			}
		}
		if r.Handled != r.Delivered {
			d.Problems = append(d.Problems, fmt.Sprintf("%s: the handler took %d events, the bus counted %d delivered",
				who, r.Handled, r.Delivered))
		}
		if r.Dropped+r.Undelivered > 0 {
			d.Problems = append(d.Problems, fmt.Sprintf("%s: %d dropped, %d undelivered", who, r.Dropped, r.Undelivered))
		}
	}
	d.OK = len(d.Problems) == 0
	return d
}

// summarize collects the outcome of a run once the bus is closed.
func (s *system) summarize(consumers []*consumer, elapsed time.Duration, interrupted bool, closeErr error) Summary {
	sum := Summary{
		Role: s.cfg.role, NATS: s.cfg.natsURL,
		Seed: s.cfg.seed, Rate: s.cfg.rate, Duration: s.cfg.duration.Seconds(), Elapsed: elapsed.Seconds(),
		Interrupted: interrupted,
	}
	if closeErr != nil {
		sum.CloseError = closeErr.Error()
	}
	st := s.bus.Stats()
	sum.Bus = BusTotals{
		Published: st.Published, Dispatched: st.Dispatched, Delivered: st.Delivered, Errors: st.Errors,
		Retries: st.Retries, DeadLettered: st.DeadLettered, Dropped: st.Dropped, Undelivered: st.Undelivered,
		PublishFailed: st.PublishFailed,
	}
	topics := s.bus.Topics()
	for _, t := range topics {
		sum.Topics = append(sum.Topics, TopicRow{
			Name: t.Name, Published: t.Published, PerSecond: float64(t.Published) / elapsed.Seconds(),
			Delivered: t.Delivered, Retries: t.Retries, DeadLettered: t.DeadLettered, HighWater: t.HighWater,
			P50: micros(t.LatencyP50), P99: micros(t.LatencyP99),
		})
	}
	expected := owed(topics)
	for _, c := range consumers {
		ss := c.sub.Stats()
		sum.Subscriptions = append(sum.Subscriptions, SubscriptionRow{
			Component: c.sub.Name(), Topic: c.sub.Topic(), Expected: expected(c.sub.Topic()),
			Dispatched: ss.Dispatched, Delivered: ss.Delivered, Handled: c.handled.Load(),
			Errors: ss.Errors, Retries: ss.Retries, DeadLettered: ss.DeadLettered,
			Dropped: ss.Dropped, Undelivered: ss.Undelivered, HighWater: ss.HighWater,
			P50: micros(ss.LatencyP50), P99: micros(ss.LatencyP99),
		})
	}
	sum.Components = s.components()
	if s.cfg.natsURL != "" {
		sum.Stream = s.cfg.stream
	}
	sum.Scenario = scenarioOf(sum.Components, s.cfg.role)
	sum.Delivery = checkDelivery(sum.Subscriptions, closeErr, kindOf(s.cfg), st.PublishFailed)
	sum.Timeline = s.analytics.timelineFrom(0)
	return sum
}

func (s *system) components() Components {
	return Components{
		MarketFeed: s.feed.state(), MSCAI: s.msc.state(), Orchestrator: s.orch.state(),
		RiskGuard: s.risk.state(), PortfolioBalancer: s.balancer.state(),
		StrategyGenerator: s.generator.state(), StrategyRuntime: s.runtime.state(),
		ContinuousLearning: s.learning.state(), EnsembleManager: s.ensemble.state(),
		HealthMonitor: s.health.state(), Notifier: s.notifier.state(),
		OpportunityRanker: s.ranker.state(), Executor: s.exec.state(),
		Analytics: s.analytics.state(), MetricsLogger: s.metrics.state(), IncidentLog: s.incidents.state(),
	}
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
