package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quantumtrader/eventbus"
)

// The families of strategies. A strategy's id starts with its family, and
// its promotion's metrics carry its entry threshold, so the Strategy
// Runtime can run any strategy it hears of.
const (
	familyMomentum = "momentum" // buys a fast up-trend
	familyBreakout = "breakout" // buys a price above its slow average
	familyMeanRev  = "meanrev"  // buys a sharp dip, betting it reverts
)

var families = []string{familyMomentum, familyBreakout, familyMeanRev}

// StrategyGenerator invents strategies and moves them through their
// lifecycle: a new one is backtested (BACKTEST to SHADOW, or to RETIRED if
// it fails), trades in shadow for two reviews (SHADOW to LIVE), and a live
// one that has lost more than retireLoss of the capital is retired (LIVE to
// RETIRED). It follows the trades to know each strategy's realised PnL.
// It judges on its own, slower cadence: a loss must show at two reviews in
// a row, and by then the risk controls have long reacted. The session
// starts with one live strategy of each family.
type StrategyGenerator struct {
	promotions *eventbus.Topic[eventbus.StrategyPromoted]
	trades     *eventbus.Topic[eventbus.TradeExecuted]
	every      time.Duration
	rng        *rand.Rand // used by the producer goroutine only

	mu         sync.Mutex
	strategies map[string]*candidate
	ids        []string // in order of creation
	promoted   int
}

// candidate is a strategy the Generator made.
type candidate struct {
	stage   eventbus.StrategyLifecycle
	entry   float64
	sharpe  float64
	pnl     float64
	reviews int // spent in the current stage
	strikes int // reviews in a row that found it over the loss limit
}

// retireLoss is the live loss, as a fraction of the capital, that retires
// a strategy.
const retireLoss = 0.015

func newStrategyGenerator(bus *eventbus.Bus, seed uint64, every time.Duration) *StrategyGenerator {
	return &StrategyGenerator{
		promotions: eventbus.StrategyPromotedTopic(bus), trades: eventbus.TradeExecutedTopic(bus),
		every: every, rng: newRand(seed, streamGenerator), strategies: map[string]*candidate{},
	}
}

func (g *StrategyGenerator) subscribe(w *wiring) error {
	return on(w, g.trades, "StrategyGenerator", g.onTrade)
}

func (g *StrategyGenerator) onTrade(_ context.Context, ev eventbus.Event[eventbus.TradeExecuted]) error {
	if ev.Payload.PnL == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.strategies[ev.Payload.StrategyID]; c != nil {
		c.pnl += *ev.Payload.PnL
	}
	return nil
}

// bootstrap promotes the strategies the session starts with. It waits
// (PublishWait) until every subscriber has handled each promotion, so that
// the MSC AI knows them before it sets the first policy. Over NATS the
// subscribers may be in other processes, which nothing can wait for: the
// promotions are published all the same, and the MSC AI's review
// republishes the policy once it has heard of them.
func (g *StrategyGenerator) bootstrap(ctx context.Context) error {
	for _, family := range families {
		g.mu.Lock()
		id := g.newLocked(family)
		c := g.strategies[id]
		c.stage = eventbus.StrategyLifecycleShadow
		c.sharpe = 1.2 + 1.2*g.rng.Float64()
		p := g.promotionLocked(id, eventbus.StrategyLifecycleLive, "validated in shadow trading before the session")
		g.mu.Unlock()
		err := g.promotions.PublishWait(ctx, p)
		if errors.Is(err, errors.ErrUnsupported) {
			err = g.promotions.Publish(ctx, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// run reviews the strategies until ctx ends.
func (g *StrategyGenerator) run(ctx context.Context) error {
	return every(ctx, g.every, func(ctx context.Context) error {
		for _, p := range g.review() {
			if err := g.promotions.Publish(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// review moves the strategies on and returns the promotions to publish.
func (g *StrategyGenerator) review() []eventbus.StrategyPromoted {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []eventbus.StrategyPromoted
	live := 0
	for _, c := range g.strategies {
		if c.stage == eventbus.StrategyLifecycleLive {
			live++
		}
	}
	backtesting := false
	for _, id := range g.ids {
		c := g.strategies[id]
		c.reviews++
		switch c.stage {
		case eventbus.StrategyLifecycleLive:
			if c.pnl < -retireLoss*capital {
				c.strikes++
			} else {
				c.strikes = 0
			}
			if c.strikes >= 2 && live > 1 { // keep one strategy trading
				live--
				out = append(out, g.promotionLocked(id, eventbus.StrategyLifecycleRetired,
					fmt.Sprintf("lost %.1f%% of the capital live", -100*c.pnl/capital)))
			}
		case eventbus.StrategyLifecycleShadow:
			if c.reviews >= 2 {
				out = append(out, g.promotionLocked(id, eventbus.StrategyLifecycleLive, "passed shadow trading"))
			}
		case eventbus.StrategyLifecycleBacktest:
			c.sharpe = 0.4 + 1.6*g.rng.Float64()
			if c.sharpe >= 1 {
				out = append(out, g.promotionLocked(id, eventbus.StrategyLifecycleShadow, "passed backtest"))
			} else {
				out = append(out, g.promotionLocked(id, eventbus.StrategyLifecycleRetired, "failed backtest"))
			}
			backtesting = true
		}
	}
	if !backtesting {
		g.newLocked(families[g.rng.IntN(len(families))])
	}
	return out
}

// newLocked makes a strategy in BACKTEST; its first promotion makes it known.
func (g *StrategyGenerator) newLocked(family string) string {
	id := fmt.Sprintf("%s_%02d", family, len(g.ids)+1)
	g.strategies[id] = &candidate{stage: eventbus.StrategyLifecycleBacktest, entry: 0.8 + 0.6*g.rng.Float64()}
	g.ids = append(g.ids, id)
	return id
}

// promotionLocked moves strategy id to stage and returns its promotion.
func (g *StrategyGenerator) promotionLocked(id string, to eventbus.StrategyLifecycle, reason string) eventbus.StrategyPromoted {
	c := g.strategies[id]
	p := eventbus.NewStrategyPromoted(id, c.stage, to, reason)
	p.Metrics = map[string]float64{
		"sharpe_ratio": round(c.sharpe, 2),
		"win_rate":     round(0.45+0.05*c.sharpe, 3),
		"avg_profit":   round(0.001*c.sharpe, 5),
		"entry_z":      round(c.entry, 2),
	}
	if c.stage == eventbus.StrategyLifecycleLive {
		p.Metrics["live_pnl"] = round(c.pnl, 2)
	}
	c.stage, c.reviews = to, 0
	g.promoted++
	return p
}

// GeneratorState is the final state of the Strategy Generator.
type GeneratorState struct {
	Promotions int                                     `json:"promotions"`
	ByStage    map[eventbus.StrategyLifecycle][]string `json:"by_stage"`
	LivePnL    map[string]float64                      `json:"pnl"` // realised, by strategy
}

func (g *StrategyGenerator) state() GeneratorState {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := GeneratorState{Promotions: g.promoted, ByStage: map[eventbus.StrategyLifecycle][]string{}, LivePnL: map[string]float64{}}
	for _, id := range g.ids {
		c := g.strategies[id]
		s.ByStage[c.stage] = append(s.ByStage[c.stage], id)
		if c.pnl != 0 {
			s.LivePnL[id] = round(c.pnl, 2)
		}
	}
	return s
}

func (s GeneratorState) String() string {
	var parts []string
	for _, stage := range []eventbus.StrategyLifecycle{
		eventbus.StrategyLifecycleLive, eventbus.StrategyLifecycleShadow,
		eventbus.StrategyLifecycleBacktest, eventbus.StrategyLifecycleRetired,
	} {
		parts = append(parts, fmt.Sprintf("%s %s", stage, list(s.ByStage[stage])))
	}
	return fmt.Sprintf("%d promotions; %s", s.Promotions, strings.Join(parts, "; "))
}

// StrategyRuntime runs the live strategies: it learns of them from the
// promotions, of the symbols worth trading from the rankings, and on every
// tick of a top symbol asks each live strategy for a signal, which it hands
// to the Executor. It hands every tick to the Executor too, which marks
// its book with it.
type StrategyRuntime struct {
	ticks         *eventbus.Topic[Tick]
	promotions    *eventbus.Topic[eventbus.StrategyPromoted]
	opportunities *eventbus.Topic[eventbus.OpportunitiesUpdated]
	exec          *Executor
	rng           *rand.Rand           // tick handler only
	features      map[string]*features // tick handler only

	mu   sync.Mutex
	live []strategy // replaced, never modified, so the tick handler can use it unlocked
	top  []string   // likewise

	seen    atomic.Uint64
	signals atomic.Uint64
}

// strategy is a live strategy as the runtime runs it.
type strategy struct {
	id     string
	family string
	entry  float64
}

func newStrategyRuntime(bus *eventbus.Bus, exec *Executor, seed uint64) *StrategyRuntime {
	return &StrategyRuntime{
		ticks: tickTopic(bus), promotions: eventbus.StrategyPromotedTopic(bus),
		opportunities: eventbus.OpportunitiesUpdatedTopic(bus),
		exec:          exec, rng: newRand(seed, streamRuntime), features: map[string]*features{},
	}
}

func (r *StrategyRuntime) subscribe(w *wiring) error {
	if err := on(w, r.promotions, "StrategyRuntime", r.onPromotion); err != nil {
		return err
	}
	if err := on(w, r.opportunities, "StrategyRuntime", r.onOpportunities); err != nil {
		return err
	}
	return on(w, r.ticks, "StrategyRuntime", r.onTick)
}

func (r *StrategyRuntime) onPromotion(_ context.Context, ev eventbus.Event[eventbus.StrategyPromoted]) error {
	p := ev.Payload
	r.mu.Lock()
	defer r.mu.Unlock()
	live := slices.DeleteFunc(slices.Clone(r.live), func(s strategy) bool { return s.id == p.StrategyID })
	if p.ToStage == eventbus.StrategyLifecycleLive {
		family, _, _ := strings.Cut(p.StrategyID, "_")
		live = append(live, strategy{id: p.StrategyID, family: family, entry: p.Metrics["entry_z"]})
		slices.SortFunc(live, func(a, b strategy) int { return strings.Compare(a.id, b.id) })
	}
	r.live = live
	return nil
}

func (r *StrategyRuntime) onOpportunities(_ context.Context, ev eventbus.Event[eventbus.OpportunitiesUpdated]) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.top = ev.Payload.TopSymbols // shared with other handlers, never modified
	return nil
}

func (r *StrategyRuntime) onTick(ctx context.Context, ev eventbus.Event[Tick]) error {
	t := ev.Payload
	r.seen.Add(1)
	if err := r.exec.onTick(ctx, t); err != nil {
		return err
	}
	f := r.features[t.Symbol]
	if f == nil {
		f = &features{}
		r.features[t.Symbol] = f
	}
	f.add(t.Price)
	r.mu.Lock()
	live, top := r.live, r.top
	r.mu.Unlock()
	if f.n < warmUp || !slices.Contains(top, t.Symbol) {
		return nil
	}
	for _, s := range live {
		x := f.signal(s.family)
		if x < s.entry {
			continue
		}
		r.signals.Add(1)
		// The model's conviction: the signal's strength, shaded by the
		// ensemble's uncertainty.
		confidence := (0.5 + 0.5*math.Tanh(x/2)) * (0.85 + 0.15*r.rng.Float64())
		o := order{strategy: s.id, symbol: t.Symbol, confidence: confidence, price: t.Price}
		if err := r.exec.submit(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// warmUp is how many ticks of a symbol the runtime needs before it trusts
// its features.
const warmUp = 20

// features are what the strategies read of one symbol's ticks.
type features struct {
	n        int
	last     float64 // log price
	ret      float64 // last log return
	variance float64 // EWMA of squared returns
	fast     float64 // EWMA of returns
	level    float64 // EWMA of log prices
}

const (
	alphaVar   = 0.05
	alphaFast  = 0.1
	alphaLevel = 0.02
)

func (f *features) add(price float64) {
	lp := math.Log(price)
	if f.n == 0 {
		f.last, f.level = lp, lp
	}
	f.ret = lp - f.last
	f.variance += alphaVar * (f.ret*f.ret - f.variance)
	f.fast += alphaFast * (f.ret - f.fast)
	f.level += alphaLevel * (lp - f.level)
	f.last = lp
	f.n++
}

// signal returns the strength of family's buy signal, in standard
// deviations: a strategy buys when it exceeds the strategy's entry.
func (f *features) signal(family string) float64 {
	sigma := math.Sqrt(f.variance)
	if sigma == 0 {
		return 0
	}
	switch family {
	case familyMomentum:
		return f.fast / (sigma * math.Sqrt(alphaFast/(2-alphaFast)))
	case familyBreakout:
		return (f.last - f.level) / sigma / 2
	case familyMeanRev:
		return -f.ret / sigma
	}
	return 0
}

// RuntimeState is the final state of the Strategy Runtime.
type RuntimeState struct {
	Live    []string `json:"live"`
	Top     []string `json:"top"`
	Ticks   uint64   `json:"ticks"`
	Signals uint64   `json:"signals"`
}

func (r *StrategyRuntime) state() RuntimeState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := RuntimeState{Top: slices.Clone(r.top), Ticks: r.seen.Load(), Signals: r.signals.Load()}
	for _, l := range r.live {
		s.Live = append(s.Live, l.id)
	}
	return s
}

func (s RuntimeState) String() string {
	return fmt.Sprintf("runs %s on %s; %s ticks, %s signals", list(s.Live), list(s.Top), commas(s.Ticks), commas(s.Signals))
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
