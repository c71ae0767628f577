package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/quantumtrader/eventbus"
)

// riskLimits are the limits the MSC AI sets in each risk mode.
type riskLimits struct {
	minConfidence float64
	maxRisk       float64 // of equity, per trade
	maxPositions  int
	maxAllowed    int // strategies allowed to trade, best first; 0 for every live one
}

var limitsOf = map[eventbus.RiskMode]riskLimits{
	eventbus.RiskModeNormal:    {minConfidence: 0.55, maxRisk: 0.02, maxPositions: 6},
	eventbus.RiskModeDefensive: {minConfidence: 0.70, maxRisk: 0.005, maxPositions: 2, maxAllowed: 1},
}

// MSCAI is the Meta Strategy Controller: it sets the risk policy of the
// whole system. It publishes a NORMAL policy at the start, turns DEFENSIVE
// as soon as a component's health is CRITICAL, and back to NORMAL once it
// is HEALTHY again. NORMAL allows every live strategy to trade; DEFENSIVE
// only the one with the best realised PnL when it turned defensive, which
// it keeps while that strategy is live. It follows the promotions and the
// trades to know which strategies are live and how they do, and its
// periodic review republishes the policy when the strategies allowed
// change. Each policy event carries the reason, and the id of the event
// that caused it, in its Metadata.
type MSCAI struct {
	policies   *eventbus.Topic[eventbus.PolicyUpdated]
	health     *eventbus.Topic[eventbus.HealthStatusChanged]
	promotions *eventbus.Topic[eventbus.StrategyPromoted]
	trades     *eventbus.Topic[eventbus.TradeExecuted]
	start      time.Time
	every      time.Duration

	// mu is held while a policy is published, so that policies go out in
	// the order they were decided, whichever goroutine decided them. No
	// consumer of policies takes it, so this cannot deadlock.
	mu          sync.Mutex
	mode        eventbus.RiskMode
	live        map[string]bool
	pnl         map[string]float64 // realised, by strategy
	allowed     []string           // in the last policy
	published   map[eventbus.RiskMode]int
	defensiveAt float64 // seconds since the start; 0 if never
}

func newMSCAI(bus *eventbus.Bus, start time.Time, every time.Duration) *MSCAI {
	return &MSCAI{
		policies:   eventbus.PolicyUpdatedTopic(bus),
		health:     eventbus.HealthStatusChangedTopic(bus),
		promotions: eventbus.StrategyPromotedTopic(bus),
		trades:     eventbus.TradeExecutedTopic(bus),
		start:      start, every: every,
		mode:      eventbus.RiskModeNormal,
		live:      map[string]bool{},
		pnl:       map[string]float64{},
		published: map[eventbus.RiskMode]int{},
	}
}

func (m *MSCAI) subscribe(w *wiring) error {
	if err := on(w, m.health, "MSCAI", m.onHealth); err != nil {
		return err
	}
	if err := on(w, m.promotions, "MSCAI", m.onPromotion); err != nil {
		return err
	}
	return on(w, m.trades, "MSCAI", m.onTrade)
}

func (m *MSCAI) onHealth(ctx context.Context, ev eventbus.Event[eventbus.HealthStatusChanged]) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := ev.Payload
	switch {
	case p.NewStatus == eventbus.HealthStatusCritical && m.mode != eventbus.RiskModeDefensive:
		m.mode = eventbus.RiskModeDefensive
		if m.defensiveAt == 0 {
			m.defensiveAt = time.Since(m.start).Seconds()
		}
	case p.NewStatus == eventbus.HealthStatusHealthy && m.mode == eventbus.RiskModeDefensive:
		m.mode = eventbus.RiskModeNormal
	default:
		return nil
	}
	return m.publishLocked(ctx, fmt.Sprintf("%s is %s", p.Component, p.NewStatus), ev.ID.String())
}

func (m *MSCAI) onPromotion(_ context.Context, ev eventbus.Event[eventbus.StrategyPromoted]) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch p := ev.Payload; {
	case p.ToStage == eventbus.StrategyLifecycleLive:
		m.live[p.StrategyID] = true
	case p.FromStage == eventbus.StrategyLifecycleLive:
		delete(m.live, p.StrategyID)
	}
	return nil
}

func (m *MSCAI) onTrade(_ context.Context, ev eventbus.Event[eventbus.TradeExecuted]) error {
	if ev.Payload.PnL == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pnl[ev.Payload.StrategyID] += *ev.Payload.PnL
	return nil
}

// publishFirstPolicy publishes the policy the session starts with.
func (m *MSCAI) publishFirstPolicy(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.publishLocked(ctx, "start of session", "")
}

// run reviews the allowed strategies until ctx ends.
func (m *MSCAI) run(ctx context.Context) error {
	return every(ctx, m.every, func(ctx context.Context) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if slices.Equal(m.allowedLocked(), m.allowed) {
			return nil
		}
		return m.publishLocked(ctx, "live strategies changed", "")
	})
}

// allowedLocked returns the strategies the current mode lets trade.
func (m *MSCAI) allowedLocked() []string {
	ids := slices.Sorted(maps.Keys(m.live))
	n := limitsOf[m.mode].maxAllowed
	if n == 0 || len(ids) <= n {
		return ids
	}
	// A restricted choice stands while its strategies are live, so that the
	// policy does not follow every swing of their PnL.
	if len(m.allowed) == n && !slices.ContainsFunc(m.allowed, func(id string) bool { return !m.live[id] }) {
		return m.allowed
	}
	slices.SortStableFunc(ids, func(a, b string) int { return cmp.Compare(m.pnl[b], m.pnl[a]) })
	return ids[:n]
}

func (m *MSCAI) publishLocked(ctx context.Context, reason, cause string) error {
	p := limitsOf[m.mode]
	m.allowed = m.allowedLocked()
	policy := eventbus.NewPolicyUpdated(m.mode, m.allowed, p.minConfidence, p.maxRisk, p.maxPositions)
	md := map[string]string{"reason": reason}
	if cause != "" {
		md["caused_by"] = cause
	}
	if err := m.policies.PublishEvent(ctx, eventbus.Event[eventbus.PolicyUpdated]{Payload: policy, Metadata: md}); err != nil {
		return err
	}
	m.published[m.mode]++
	return nil
}

// MSCAIState is the final state of the MSC AI.
type MSCAIState struct {
	Mode        eventbus.RiskMode         `json:"mode"`
	Allowed     []string                  `json:"allowed"`
	Published   map[eventbus.RiskMode]int `json:"published"`
	DefensiveAt float64                   `json:"defensive_at_s"` // 0 if never
}

func (m *MSCAI) state() MSCAIState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MSCAIState{Mode: m.mode, Allowed: slices.Clone(m.allowed), Published: maps.Clone(m.published), DefensiveAt: m.defensiveAt}
}

func (s MSCAIState) String() string {
	since := ""
	if s.DefensiveAt > 0 {
		since = fmt.Sprintf(" (first DEFENSIVE at %.2fs)", s.DefensiveAt)
	}
	return fmt.Sprintf("mode %s%s; policies published: %d NORMAL, %d DEFENSIVE; allows %s",
		s.Mode, since, s.Published[eventbus.RiskModeNormal], s.Published[eventbus.RiskModeDefensive], list(s.Allowed))
}

// Orchestrator acts on policies: it lets a strategy's signal through to the
// Executor only if the current policy allows that strategy and the signal's
// confidence reaches the policy's minimum. Before the first policy it lets
// nothing through.
type Orchestrator struct {
	policies *eventbus.Topic[eventbus.PolicyUpdated]

	mu            sync.Mutex
	policy        eventbus.PolicyUpdated
	allowed       map[string]bool
	updates       int
	sawDefensive  bool
	approved      uint64
	notAllowed    uint64
	lowConfidence uint64
}

func newOrchestrator(bus *eventbus.Bus) *Orchestrator {
	return &Orchestrator{policies: eventbus.PolicyUpdatedTopic(bus)}
}

func (o *Orchestrator) subscribe(w *wiring) error {
	// Replay: a consumer of state starts from the current policy, even if
	// it subscribes after the MSC AI published it.
	return on(w, o.policies, "Orchestrator", o.onPolicy, eventbus.Replay())
}

func (o *Orchestrator) onPolicy(_ context.Context, ev eventbus.Event[eventbus.PolicyUpdated]) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.policy = ev.Payload
	o.allowed = map[string]bool{}
	for _, id := range ev.Payload.AllowedStrategies {
		o.allowed[id] = true
	}
	o.updates++
	o.sawDefensive = o.sawDefensive || ev.Payload.RiskMode == eventbus.RiskModeDefensive
	return nil
}

// approve reports whether a signal may go to the Executor.
func (o *Orchestrator) approve(strategy string, confidence float64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case !o.allowed[strategy]:
		o.notAllowed++
	case confidence < o.policy.GlobalMinConfidence:
		o.lowConfidence++
	default:
		o.approved++
		return true
	}
	return false
}

// OrchestratorState is the final state of the Orchestrator.
type OrchestratorState struct {
	Mode          eventbus.RiskMode `json:"mode"`
	MinConfidence float64           `json:"min_confidence"`
	Allowed       []string          `json:"allowed"`
	Policies      int               `json:"policies"`
	SawDefensive  bool              `json:"saw_defensive"`
	Approved      uint64            `json:"approved"`
	NotAllowed    uint64            `json:"not_allowed"`
	LowConfidence uint64            `json:"low_confidence"`
}

func (o *Orchestrator) state() OrchestratorState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return OrchestratorState{
		Mode: o.policy.RiskMode, MinConfidence: o.policy.GlobalMinConfidence,
		Allowed: slices.Clone(o.policy.AllowedStrategies), Policies: o.updates, SawDefensive: o.sawDefensive,
		Approved: o.approved, NotAllowed: o.notAllowed, LowConfidence: o.lowConfidence,
	}
}

func (s OrchestratorState) String() string {
	return fmt.Sprintf("%s, min confidence %.2f, allows %s; %d policies; signals: %s approved, %s not allowed, %s below confidence",
		s.Mode, s.MinConfidence, list(s.Allowed), s.Policies, commas(s.Approved), commas(s.NotAllowed), commas(s.LowConfidence))
}

// RiskGuard acts on policies: it sizes each order from the policy's
// maximum risk per trade and refuses it when the book already holds the
// maximum number of positions.
type RiskGuard struct {
	policies *eventbus.Topic[eventbus.PolicyUpdated]

	mu           sync.Mutex
	policy       eventbus.PolicyUpdated
	sawDefensive bool
	sized        uint64
	refused      uint64
}

// stopDistance is the loss, as a fraction of the price, at which a
// position is assumed to be cut: risking maxRisk of equity with a stop that
// far buys maxRisk/stopDistance of equity.
const stopDistance = 0.1

func newRiskGuard(bus *eventbus.Bus) *RiskGuard {
	return &RiskGuard{policies: eventbus.PolicyUpdatedTopic(bus)}
}

func (r *RiskGuard) subscribe(w *wiring) error {
	return on(w, r.policies, "RiskGuard", r.onPolicy, eventbus.Replay())
}

func (r *RiskGuard) onPolicy(_ context.Context, ev eventbus.Event[eventbus.PolicyUpdated]) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.policy = ev.Payload
	r.sawDefensive = r.sawDefensive || ev.Payload.RiskMode == eventbus.RiskModeDefensive
	return nil
}

// mode returns the risk mode in force, or "" before the first policy.
func (r *RiskGuard) mode() eventbus.RiskMode {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.policy.RiskMode
}

// size returns the size of a new position at price and the risk mode that
// decided it, or false if the book, which holds open positions, may not
// take one more.
func (r *RiskGuard) size(price, equity float64, open int) (float64, eventbus.RiskMode, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.policy.MaxRiskPerTrade == 0 || open >= r.policy.MaxPositions || equity <= 0 {
		r.refused++
		return 0, r.policy.RiskMode, false
	}
	r.sized++
	return equity * r.policy.MaxRiskPerTrade / stopDistance / price, r.policy.RiskMode, true
}

// RiskGuardState is the final state of the Risk Guard.
type RiskGuardState struct {
	Mode            eventbus.RiskMode `json:"mode"`
	MaxRiskPerTrade float64           `json:"max_risk_per_trade"`
	MaxPositions    int               `json:"max_positions"`
	SawDefensive    bool              `json:"saw_defensive"`
	Sized           uint64            `json:"sized"`
	Refused         uint64            `json:"refused"`
}

func (r *RiskGuard) state() RiskGuardState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RiskGuardState{
		Mode: r.policy.RiskMode, MaxRiskPerTrade: r.policy.MaxRiskPerTrade, MaxPositions: r.policy.MaxPositions,
		SawDefensive: r.sawDefensive, Sized: r.sized, Refused: r.refused,
	}
}

func (s RiskGuardState) String() string {
	return fmt.Sprintf("%s, %.1f%% of equity at risk per trade, at most %d positions; orders: %s sized, %s refused at the position limit",
		s.Mode, 100*s.MaxRiskPerTrade, s.MaxPositions, commas(s.Sized), commas(s.Refused))
}

// PortfolioBalancer acts on policies: each risk mode keeps a share of the
// equity in cash (cashReserve), and the Balancer refuses a position that
// would eat into that reserve. Every change of mode is a rebalance.
type PortfolioBalancer struct {
	policies *eventbus.Topic[eventbus.PolicyUpdated]

	mu         sync.Mutex
	mode       eventbus.RiskMode
	reserve    float64
	rebalances int
	refused    uint64
}

var cashReserve = map[eventbus.RiskMode]float64{
	eventbus.RiskModeAggressive: 0,
	eventbus.RiskModeNormal:     0.10,
	eventbus.RiskModeDefensive:  0.60,
}

func newPortfolioBalancer(bus *eventbus.Bus) *PortfolioBalancer {
	return &PortfolioBalancer{policies: eventbus.PolicyUpdatedTopic(bus), reserve: 1}
}

func (b *PortfolioBalancer) subscribe(w *wiring) error {
	return on(w, b.policies, "PortfolioBalancer", b.onPolicy, eventbus.Replay())
}

func (b *PortfolioBalancer) onPolicy(_ context.Context, ev eventbus.Event[eventbus.PolicyUpdated]) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if mode := ev.Payload.RiskMode; mode != b.mode {
		b.mode, b.reserve = mode, cashReserve[mode]
		b.rebalances++
	}
	return nil
}

// allows reports whether the book may grow to exposure (the value of its
// positions) with equity.
func (b *PortfolioBalancer) allows(exposure, equity float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if exposure > (1-b.reserve)*equity {
		b.refused++
		return false
	}
	return true
}

// BalancerState is the final state of the Portfolio Balancer.
type BalancerState struct {
	Mode        eventbus.RiskMode `json:"mode"`
	CashReserve float64           `json:"cash_reserve"`
	Rebalances  int               `json:"rebalances"`
	Refused     uint64            `json:"refused"`
}

func (b *PortfolioBalancer) state() BalancerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BalancerState{Mode: b.mode, CashReserve: b.reserve, Rebalances: b.rebalances, Refused: b.refused}
}

func (s BalancerState) String() string {
	return fmt.Sprintf("%s, %.0f%% of equity in cash; %d rebalances; %s orders refused for the cash reserve",
		s.Mode, 100*s.CashReserve, s.Rebalances, commas(s.Refused))
}
