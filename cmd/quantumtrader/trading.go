package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/quantumtrader/eventbus"
)

// OpportunityRanker follows every tick and, every so many ticks, ranks the
// symbols by the strength of their trend and publishes the three best as
// an opportunities.updated event. Symbols whose score is below minScore
// are counted as excluded.
type OpportunityRanker struct {
	ticks         *eventbus.Topic[Tick]
	opportunities *eventbus.Topic[eventbus.OpportunitiesUpdated]
	every         uint64

	mu       sync.Mutex
	trend    map[string]*trend
	seen     uint64
	rankings uint64
	top      []string
}

const (
	topN     = 3
	minScore = 0.25
)

func newOpportunityRanker(bus *eventbus.Bus, every int) *OpportunityRanker {
	return &OpportunityRanker{
		ticks: tickTopic(bus), opportunities: eventbus.OpportunitiesUpdatedTopic(bus),
		every: uint64(every), trend: map[string]*trend{},
	}
}

func (r *OpportunityRanker) subscribe(w *wiring) error {
	return on(w, r.ticks, "OpportunityRanker", r.onTick)
}

func (r *OpportunityRanker) onTick(ctx context.Context, ev eventbus.Event[Tick]) error {
	ranking, ok := r.update(ev.Payload)
	if !ok {
		return nil
	}
	// Published outside the lock; this handler is the only publisher.
	return r.opportunities.Publish(ctx, ranking)
}

func (r *OpportunityRanker) update(t Tick) (eventbus.OpportunitiesUpdated, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tr := r.trend[t.Symbol]
	if tr == nil {
		tr = &trend{}
		r.trend[t.Symbol] = tr
	}
	tr.add(t.Price)
	r.seen++
	if r.seen%r.every != 0 {
		return eventbus.OpportunitiesUpdated{}, false
	}
	scores := map[string]float64{}
	excluded := 0
	for sym, tr := range r.trend {
		s := 0.5 + 0.5*math.Tanh(tr.z()/4)
		scores[sym] = math.Round(s*1000) / 1000
		if s < minScore {
			excluded++
		}
	}
	ranked := slices.SortedFunc(maps.Keys(scores), func(a, b string) int {
		return cmp.Or(cmp.Compare(scores[b], scores[a]), cmp.Compare(a, b))
	})
	r.top = ranked[:min(topN, len(ranked))]
	r.rankings++
	o := eventbus.NewOpportunitiesUpdated(slices.Clone(r.top), scores)
	o.Criteria = map[string]any{"score": "trend strength, EWMA of returns over their volatility", "min_score": minScore}
	o.ExcludedCount = excluded
	return o, true
}

// trend is an exponentially weighted mean and variance of a price's log
// returns.
type trend struct {
	last, mean, variance float64
}

// alphaTrend is the weight of the newest return in a trend.
const alphaTrend = 0.02

func (t *trend) add(price float64) {
	if t.last > 0 {
		r := math.Log(price / t.last)
		d := r - t.mean
		t.mean += alphaTrend * d
		t.variance = (1 - alphaTrend) * (t.variance + alphaTrend*d*d)
	}
	t.last = price
}

// z is the mean return in standard errors of the window: positive in an
// up-trend, negative in a down-trend, near zero in noise.
func (t *trend) z() float64 {
	if t.variance == 0 {
		return 0
	}
	return t.mean / math.Sqrt(t.variance) * 10
}

// RankerState is the final state of the Opportunity Ranker.
type RankerState struct {
	Ticks    uint64   `json:"ticks"`
	Rankings uint64   `json:"rankings"`
	Top      []string `json:"top"`
}

func (r *OpportunityRanker) state() RankerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RankerState{Ticks: r.seen, Rankings: r.rankings, Top: slices.Clone(r.top)}
}

func (s RankerState) String() string {
	return fmt.Sprintf("%s rankings of %s ticks; top %s", commas(s.Rankings), commas(s.Ticks), list(s.Top))
}

// order is a strategy's signal on its way to the Executor.
type order struct {
	strategy   string
	symbol     string
	confidence float64
	price      float64
}

// lot is an open position.
type lot struct {
	id       string
	symbol   string
	strategy string
	size     float64
	entry    float64
	opened   time.Duration // market time
}

// Executor trades for the Strategy Runtime, which calls it on every tick
// and with every signal. A signal becomes an order only if the Orchestrator
// approves it, the Risk Guard sizes it and the Portfolio Balancer has room
// for it; the Executor then buys at the tick's price, holds the position
// for a fixed market time and sells it, and publishes each fill as a
// trade.executed event (the sale with its realised PnL, and the model of
// the Ensemble Manager in force). A strategy may add to a position it
// holds: a dip buyer averages down all the way through a crash.
type Executor struct {
	trades   *eventbus.Topic[eventbus.TradeExecuted]
	orch     *Orchestrator
	risk     *RiskGuard
	balancer *PortfolioBalancer
	ensemble *EnsembleManager
	hold     time.Duration

	mu       sync.Mutex
	prices   map[string]float64
	lots     []lot
	realized float64
	buys     uint64
	sells    uint64
	at       time.Duration // market time of the last tick
	byMode   map[eventbus.RiskMode]*modeStats
}

// modeStats is what the Executor did while a risk mode was in force.
type modeStats struct {
	seconds  float64 // of market time
	buys     uint64
	notional float64
}

func newExecutor(bus *eventbus.Bus, o *Orchestrator, r *RiskGuard, b *PortfolioBalancer, e *EnsembleManager, hold time.Duration) *Executor {
	return &Executor{
		trades: eventbus.TradeExecutedTopic(bus), orch: o, risk: r, balancer: b, ensemble: e, hold: hold,
		prices: map[string]float64{}, byMode: map[eventbus.RiskMode]*modeStats{},
	}
}

// onTick marks the book to the tick and sells the positions in its symbol
// that have been held long enough. The caller is the Strategy Runtime's
// tick handler, so there is one caller at a time, of onTick and submit.
//
// Both publish their fills once the lock is released: a full subscriber
// buffer blocks Publish, and the live view must still be able to read the
// Executor's state meanwhile.
func (e *Executor) onTick(ctx context.Context, t Tick) error {
	mode := e.risk.mode()
	var fills []eventbus.TradeExecuted
	e.mu.Lock()
	e.prices[t.Symbol] = t.Price
	if mode != "" && t.At > e.at {
		e.modeStats(mode).seconds += (t.At - e.at).Seconds()
	}
	e.at = max(e.at, t.At)
	e.lots = slices.DeleteFunc(e.lots, func(l lot) bool {
		if l.symbol != t.Symbol || t.At-l.opened < e.hold {
			return false
		}
		pnl := (t.Price - l.entry) * l.size
		e.realized += pnl
		e.sells++
		fill := eventbus.NewTradeExecuted(l.id+"-X", l.symbol, eventbus.SideSell, l.size, t.Price, l.strategy)
		fill.PnL = &pnl
		fills = append(fills, fill)
		return true
	})
	e.mu.Unlock()
	for _, f := range fills {
		if err := e.trades.Publish(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// submit turns a signal into a trade if every check lets it through.
func (e *Executor) submit(ctx context.Context, o order) error {
	if !e.orch.approve(o.strategy, o.confidence) {
		return nil
	}
	e.mu.Lock()
	equity, exposure := e.valueLocked()
	size, mode, ok := e.risk.size(o.price, equity, len(e.lots))
	if !ok || !e.balancer.allows(exposure+size*o.price, equity) {
		e.mu.Unlock()
		return nil
	}
	e.buys++
	ms := e.modeStats(mode)
	ms.buys++
	ms.notional += size * o.price
	id := fmt.Sprintf("ORD_%06d", e.buys)
	e.lots = append(e.lots, lot{id: id, symbol: o.symbol, strategy: o.strategy, size: size, entry: o.price, opened: e.at})
	fill := eventbus.NewTradeExecuted(id, o.symbol, eventbus.SideBuy, size, o.price, o.strategy)
	fill.Model = new(e.ensemble.model())
	e.mu.Unlock()
	return e.trades.Publish(ctx, fill)
}

func (e *Executor) modeStats(m eventbus.RiskMode) *modeStats {
	ms := e.byMode[m]
	if ms == nil {
		ms = &modeStats{}
		e.byMode[m] = ms
	}
	return ms
}

// valueLocked returns the equity (capital, realised PnL and open positions
// at their last prices) and the exposure (the value of open positions).
func (e *Executor) valueLocked() (equity, exposure float64) {
	equity = capital + e.realized
	for _, l := range e.lots {
		p := e.prices[l.symbol]
		exposure += l.size * p
		equity += (p - l.entry) * l.size
	}
	return equity, exposure
}

// ExecutorState is the final state of the Executor.
type ExecutorState struct {
	Buys        uint64                           `json:"buys"`
	Sells       uint64                           `json:"sells"`
	OpenLots    int                              `json:"open_lots"`
	RealizedPnL float64                          `json:"realized_pnl"`
	Equity      float64                          `json:"equity"`
	ByMode      map[eventbus.RiskMode]ModeTrades `json:"by_mode"`
}

// ModeTrades is what the Executor bought while a risk mode was in force.
type ModeTrades struct {
	Seconds         float64 `json:"seconds"` // of market time in the mode
	Buys            uint64  `json:"buys"`
	BuysPerSecond   float64 `json:"buys_per_s"`
	AverageNotional float64 `json:"average_notional"` // USDT per buy
}

func (e *Executor) state() ExecutorState {
	e.mu.Lock()
	defer e.mu.Unlock()
	equity, _ := e.valueLocked()
	s := ExecutorState{
		Buys: e.buys, Sells: e.sells, OpenLots: len(e.lots), RealizedPnL: e.realized, Equity: equity,
		ByMode: map[eventbus.RiskMode]ModeTrades{},
	}
	for m, ms := range e.byMode {
		mt := ModeTrades{Seconds: ms.seconds, Buys: ms.buys}
		if ms.seconds > 0 {
			mt.BuysPerSecond = float64(ms.buys) / ms.seconds
		}
		if ms.buys > 0 {
			mt.AverageNotional = ms.notional / float64(ms.buys)
		}
		s.ByMode[m] = mt
	}
	return s
}

func (s ExecutorState) String() string {
	text := fmt.Sprintf("%s buys, %s sells, %d open; realised PnL %s USDT, equity %s",
		commas(s.Buys), commas(s.Sells), s.OpenLots, money(s.RealizedPnL), money(s.Equity))
	for _, m := range []eventbus.RiskMode{eventbus.RiskModeNormal, eventbus.RiskModeDefensive} {
		if mt, ok := s.ByMode[m]; ok {
			text += fmt.Sprintf("; while %s %.1f buys/s averaging %s USDT", m, mt.BuysPerSecond, money(mt.AverageNotional))
		}
	}
	return text
}
