package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/quantumtrader/eventbus"
)

// Analytics is the Analytics Service: it subscribes to every topic, counts
// the events, keeps the trading statistics, and writes the timeline of the
// events that change the course of the session (policies, health changes,
// promotions, dead letters), which the live view prints as they come.
type Analytics struct {
	bus   *eventbus.Bus
	start time.Time

	mu       sync.Mutex
	events   map[string]uint64
	timeline []TimelineEntry
	trades   uint64
	closed   uint64
	wins     uint64
	pnl      float64
	volume   float64
}

// TimelineEntry is one event of the timeline.
type TimelineEntry struct {
	At    float64 `json:"at_s"` // seconds since the start
	Topic string  `json:"topic"`
	Text  string  `json:"text"`
}

func newAnalytics(bus *eventbus.Bus, start time.Time) *Analytics {
	return &Analytics{bus: bus, start: start, events: map[string]uint64{}}
}

func (a *Analytics) subscribe(w *wiring) error {
	return onAll(w, a.bus, "Analytics", a.onEvent)
}

func (a *Analytics) onEvent(_ context.Context, ev eventbus.Event[any]) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events[ev.Topic]++
	var text string
	switch p := ev.Payload.(type) {
	case eventbus.TradeExecuted:
		a.trades++
		a.volume += p.Size * p.Price
		if p.PnL != nil {
			a.closed++
			a.pnl += *p.PnL
			if *p.PnL > 0 {
				a.wins++
			}
		}
	case eventbus.PolicyUpdated:
		text = fmt.Sprintf("%s: allows %s, min confidence %.2f, %.1f%% risk per trade, %d positions (%s)",
			p.RiskMode, list(p.AllowedStrategies), p.GlobalMinConfidence, 100*p.MaxRiskPerTrade, p.MaxPositions, ev.Metadata["reason"])
	case eventbus.HealthStatusChanged:
		text = healthText(p)
	case eventbus.StrategyPromoted:
		text = fmt.Sprintf("%s %s → %s: %s (Sharpe %.2f)", p.StrategyID, p.FromStage, p.ToStage, p.Reason, p.Metrics["sharpe_ratio"])
	case eventbus.ModelPromoted:
		text = fmt.Sprintf("%s %s → %s (accuracy %.3f)", p.ModelName, p.OldVersion, p.NewVersion, p.Metrics["accuracy"])
	case eventbus.DeadLetter:
		text = fmt.Sprintf("%s gave up on a %s event after %d attempts: %s", p.Subscriber, p.Topic, p.Attempts, p.Error)
	}
	if text != "" {
		a.timeline = append(a.timeline, TimelineEntry{At: ev.Time.Sub(a.start).Seconds(), Topic: ev.Topic, Text: text})
	}
	return nil
}

// timelineFrom returns the timeline entries from the i-th on.
func (a *Analytics) timelineFrom(i int) []TimelineEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.timeline[min(i, len(a.timeline)):])
}

// AnalyticsState is the final state of the Analytics Service.
type AnalyticsState struct {
	Events  map[string]uint64 `json:"events"`
	Trades  uint64            `json:"trades"`
	Closed  uint64            `json:"closed"`
	WinRate float64           `json:"win_rate"`
	PnL     float64           `json:"pnl"`
	Volume  float64           `json:"volume"`
}

func (a *Analytics) state() AnalyticsState {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := AnalyticsState{Events: maps.Clone(a.events), Trades: a.trades, Closed: a.closed, PnL: a.pnl, Volume: a.volume}
	if a.closed > 0 {
		s.WinRate = float64(a.wins) / float64(a.closed)
	}
	return s
}

func (s AnalyticsState) String() string {
	return fmt.Sprintf("%s events of %d topics; %s trades, %s USDT traded, %.0f%% of closed trades won, PnL %s",
		commas(total(s.Events)), len(s.Events), commas(s.Trades), money(s.Volume), 100*s.WinRate, money(s.PnL))
}

// MetricsLogger subscribes to every topic and writes each event as a line
// of JSON, in the wire format of the original system, to its sink (here the
// sink only counts). Encoding is the costliest handler of the system, so it
// runs on two goroutines, partitioned so that each symbol's ticks, and the
// other events, stay in order.
type MetricsLogger struct {
	bus *eventbus.Bus

	mu    sync.Mutex
	lines map[string]uint64
	bytes uint64
}

func newMetricsLogger(bus *eventbus.Bus) *MetricsLogger {
	return &MetricsLogger{bus: bus, lines: map[string]uint64{}}
}

func (m *MetricsLogger) subscribe(w *wiring) error {
	// Over NATS each topic has a consumer of its own, so the topics
	// already run in parallel, each in its order; PartitionBy needs the
	// publisher in this process.
	var opts []eventbus.SubOption
	if !w.remote {
		opts = append(opts, eventbus.Concurrency(2), eventbus.PartitionBy(func(p any) string {
			if t, ok := p.(Tick); ok {
				return t.Symbol
			}
			return "events"
		}))
	}
	return onAll(w, m.bus, "MetricsLogger", m.onEvent, opts...)
}

func (m *MetricsLogger) onEvent(_ context.Context, ev eventbus.Event[any]) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines[ev.Topic]++
	m.bytes += uint64(len(line)) + 1
	return nil
}

// LoggerState is the final state of the Metrics Logger.
type LoggerState struct {
	Lines map[string]uint64 `json:"lines"`
	Bytes uint64            `json:"bytes"`
}

func (m *MetricsLogger) state() LoggerState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return LoggerState{Lines: maps.Clone(m.lines), Bytes: m.bytes}
}

func (s LoggerState) String() string {
	return fmt.Sprintf("%s JSON lines, %.1f MB", commas(total(s.Lines)), float64(s.Bytes)/1e6)
}

// total is the sum of the counts per topic.
func total(counts map[string]uint64) uint64 {
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n
}
