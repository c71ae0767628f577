package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/quantumtrader/eventbus"
)

// Tick is one price of the simulated market, the payload of the market.tick
// topic: the seventh topic of the system, next to the six kinds of the
// original design, and an example of a topic of the user's own type.
//
// At is market time, the tick's place in the session: every component
// reads the clock from the ticks, so that what they compute does not depend
// on how far behind their queues are.
type Tick struct {
	Seq    uint64        `json:"seq"`
	Symbol string        `json:"symbol"`
	Price  float64       `json:"price"`
	At     time.Duration `json:"at_ns"`
}

// TickTopic is the name of the topic of Ticks.
const TickTopic = "market.tick"

func tickTopic(bus *eventbus.Bus) *eventbus.Topic[Tick] {
	return eventbus.MustTopic[Tick](bus, TickTopic)
}

// Market is the simulated market: for each symbol a seeded random walk over
// the session, driven by one market factor, which crashes at a seeded
// moment in the first third of the session and rebounds in part after.
// Prices are a function of the fraction of the session elapsed, so the
// crash has the same shape at any tick rate. A Market is read-only once
// made, and safe for concurrent use.
type Market struct {
	Symbols    []string
	CrashStart float64 // fraction of the session at which the crash begins
	CrashEnd   float64 // fraction at which it ends
	CrashDepth float64 // how far the market factor falls, e.g. 0.25
	path       [][]float64
}

var symbols = []struct {
	name string
	base float64
}{
	{"BTCUSDT", 42350.5}, {"ETHUSDT", 2250}, {"SOLUSDT", 98.4}, {"BNBUSDT", 310.2},
	{"XRPUSDT", 0.62}, {"ADAUSDT", 0.58}, {"AVAXUSDT", 36.1}, {"DOGEUSDT", 0.085},
}

// marketSteps is the resolution of the path; ticks interpolate between steps.
const marketSteps = 1000

func newMarket(seed uint64) *Market {
	rng := newRand(seed, streamMarket)
	m := &Market{
		CrashStart: 0.15 + 0.15*rng.Float64(),
		CrashDepth: 0.20 + 0.10*rng.Float64(),
	}
	m.CrashEnd = m.CrashStart + 0.08 + 0.04*rng.Float64()
	beta := make([]float64, len(symbols))
	idio := make([]float64, len(symbols))
	for i, s := range symbols {
		m.Symbols = append(m.Symbols, s.name)
		beta[i] = 0.8 + 0.6*rng.Float64()
	}
	// Calm markets move about 1.5% (the factor) and 2% (each symbol) over
	// the whole session; the crash takes the factor down by CrashDepth and
	// the rest of the session wins back a third of it.
	sigmaFactor, sigmaSymbol := 0.015/math.Sqrt(marketSteps), 0.02/math.Sqrt(marketSteps)
	fall := math.Log(1 - m.CrashDepth)
	crashSteps := (m.CrashEnd - m.CrashStart) * marketSteps
	afterSteps := (1 - m.CrashEnd) * marketSteps
	factor := 0.0
	for k := range marketSteps + 1 {
		f := float64(k) / marketSteps
		switch {
		case f >= m.CrashStart && f < m.CrashEnd:
			factor += fall / crashSteps
		case f >= m.CrashEnd:
			factor -= fall / 3 / afterSteps
		}
		factor += sigmaFactor * rng.NormFloat64()
		row := make([]float64, len(symbols))
		for i, s := range symbols {
			idio[i] += sigmaSymbol * rng.NormFloat64()
			row[i] = s.base * math.Exp(beta[i]*factor+idio[i])
		}
		m.path = append(m.path, row)
	}
	return m
}

// price returns the price of symbol i at fraction f of the session.
func (m *Market) price(i int, f float64) float64 {
	x := min(max(f, 0), 1) * marketSteps
	k := min(int(x), marketSteps-1)
	w := x - float64(k)
	return m.path[k][i]*(1-w) + m.path[k+1][i]*w
}

// MarketFeed publishes the market's ticks on market.tick, one symbol after
// another, at the rate of the -rate flag, or as fast as the subscribers
// keep up with rate 0. Each price carries a little noise of its own around
// the market's path.
type MarketFeed struct {
	market  *Market
	ticks   *eventbus.Topic[Tick]
	rate    int
	session time.Duration
	rng     *rand.Rand // used by run's goroutine only
	sent    atomic.Uint64
	at      atomic.Int64 // market time of the last tick
}

// tickNoise is the standard deviation of a tick's price around the path.
const tickNoise = 0.0004

func newMarketFeed(bus *eventbus.Bus, m *Market, cfg config) *MarketFeed {
	return &MarketFeed{
		market: m, ticks: tickTopic(bus), rate: cfg.rate, session: cfg.duration,
		rng: newRand(cfg.seed, streamFeed),
	}
}

// run publishes ticks until ctx ends or the session is over.
func (f *MarketFeed) run(ctx context.Context) error {
	if f.rate == 0 {
		return f.runFlatOut(ctx)
	}
	// A pacer, not a ticker per event: each wake-up publishes the ticks
	// that are due, so the rate holds even when one wake-up comes late.
	pace := time.NewTicker(2 * time.Millisecond)
	defer pace.Stop()
	start := time.Now()
	total := uint64(float64(f.rate) * f.session.Seconds())
	for seq := uint64(0); seq < total; {
		due := min(total, uint64(time.Since(start).Seconds()*float64(f.rate)))
		for ; seq < due; seq++ {
			at := time.Duration(float64(seq) / float64(f.rate) * float64(time.Second))
			if err := f.publish(ctx, seq, at); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pace.C:
		}
	}
	return nil
}

// runFlatOut publishes as fast as the bus accepts: blocking on a full
// buffer is what paces it.
func (f *MarketFeed) runFlatOut(ctx context.Context) error {
	start := time.Now()
	for seq := uint64(0); ; seq++ {
		if seq%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		at := time.Since(start)
		if at >= f.session {
			return nil
		}
		if err := f.publish(ctx, seq, at); err != nil {
			return err
		}
	}
}

// publish publishes tick seq. The end of the run stops the feed between
// two ticks, never during one: over NATS a Publish cut short may have been
// stored all the same, and the count of ticks sent would then be off.
func (f *MarketFeed) publish(ctx context.Context, seq uint64, at time.Duration) error {
	i := int(seq % uint64(len(f.market.Symbols)))
	price := f.market.price(i, at.Seconds()/f.session.Seconds()) * (1 + tickNoise*f.rng.NormFloat64())
	err := f.ticks.Publish(context.WithoutCancel(ctx), Tick{Seq: seq, Symbol: f.market.Symbols[i], Price: price, At: at})
	if err == nil {
		f.sent.Add(1)
		f.at.Store(int64(at))
	}
	return err
}

// FeedState is what the MarketFeed did.
type FeedState struct {
	Ticks      uint64  `json:"ticks"`
	MarketTime float64 `json:"market_time_s"` // of the last tick
	CrashStart float64 `json:"crash_start_s"`
	CrashEnd   float64 `json:"crash_end_s"`
	CrashDepth float64 `json:"crash_depth"`
}

func (f *MarketFeed) state() FeedState {
	s := f.session.Seconds()
	return FeedState{
		Ticks:      f.sent.Load(),
		MarketTime: time.Duration(f.at.Load()).Seconds(),
		CrashStart: f.market.CrashStart * s,
		CrashEnd:   f.market.CrashEnd * s,
		CrashDepth: f.market.CrashDepth,
	}
}

func (s FeedState) String() string {
	return fmt.Sprintf("%s ticks of %d symbols up to %.1fs of market time; crash of %.0f%% from %.2fs to %.2fs",
		commas(s.Ticks), len(symbols), s.MarketTime, 100*s.CrashDepth, s.CrashStart, s.CrashEnd)
}
