package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/quantumtrader/eventbus"
)

// The drawdown limits of the DrawdownGuard: the health is DEGRADED from
// degradedDrawdown and CRITICAL from criticalDrawdown, and it improves again
// only once the drawdown is hysteresis below the limit, so that it does not
// flap around one.
const (
	degradedDrawdown = 0.03
	criticalDrawdown = 0.06
	hysteresis       = 0.015
)

// HealthMonitor is the System Health Monitor. Its DrawdownGuard follows
// the realised PnL of every trade, keeps the equity and its peak, and
// publishes a health.status_changed event whenever the drawdown from the
// peak moves the health to another status.
type HealthMonitor struct {
	trades *eventbus.Topic[eventbus.TradeExecuted]
	health *eventbus.Topic[eventbus.HealthStatusChanged]
	start  time.Time

	mu          sync.Mutex
	status      eventbus.HealthStatus
	equity      float64
	peak        float64
	maxDrawdown float64
	changes     int
	criticalAt  float64 // seconds since the start; 0 if never
}

func newHealthMonitor(bus *eventbus.Bus, start time.Time) *HealthMonitor {
	return &HealthMonitor{
		trades: eventbus.TradeExecutedTopic(bus), health: eventbus.HealthStatusChangedTopic(bus), start: start,
		status: eventbus.HealthStatusHealthy, equity: capital, peak: capital,
	}
}

func (h *HealthMonitor) subscribe(w *wiring) error {
	return on(w, h.trades, "HealthMonitor", h.onTrade)
}

func (h *HealthMonitor) onTrade(ctx context.Context, ev eventbus.Event[eventbus.TradeExecuted]) error {
	if ev.Payload.PnL == nil {
		return nil // a buy: nothing realised yet
	}
	change, ok := h.update(*ev.Payload.PnL)
	if !ok {
		return nil
	}
	// This handler is the only publisher of health changes, so they go
	// out in order without holding the lock.
	return h.health.PublishEvent(ctx, eventbus.Event[eventbus.HealthStatusChanged]{
		Payload:  change,
		Metadata: map[string]string{"order_id": ev.Payload.OrderID},
	})
}

func (h *HealthMonitor) update(pnl float64) (eventbus.HealthStatusChanged, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.equity += pnl
	h.peak = max(h.peak, h.equity)
	dd := 1 - h.equity/h.peak
	h.maxDrawdown = max(h.maxDrawdown, dd)
	next := healthOf(h.status, dd)
	if next == h.status {
		return eventbus.HealthStatusChanged{}, false
	}
	limit := degradedDrawdown
	if next == eventbus.HealthStatusCritical {
		limit = criticalDrawdown
	}
	reason := fmt.Sprintf("drawdown %.1f%%, limit %.0f%%", 100*dd, 100*limit)
	c := eventbus.NewHealthStatusChanged(h.status, next, "DrawdownGuard", reason)
	// The readings of the original system's alert, in percent.
	c.Metrics = map[string]any{
		"current_dd": round(-100*dd, 2), "max_allowed_dd": -100 * criticalDrawdown, "equity": round(h.equity, 2),
	}
	h.status = next
	h.changes++
	if next == eventbus.HealthStatusCritical && h.criticalAt == 0 {
		h.criticalAt = time.Since(h.start).Seconds()
	}
	return c, true
}

// healthOf is the status a drawdown dd gives, coming from status cur.
func healthOf(cur eventbus.HealthStatus, dd float64) eventbus.HealthStatus {
	switch {
	case dd >= criticalDrawdown, cur == eventbus.HealthStatusCritical && dd >= criticalDrawdown-hysteresis:
		return eventbus.HealthStatusCritical
	case dd >= degradedDrawdown, cur != eventbus.HealthStatusHealthy && dd >= degradedDrawdown-hysteresis:
		return eventbus.HealthStatusDegraded
	}
	return eventbus.HealthStatusHealthy
}

// HealthState is the final state of the Health Monitor.
type HealthState struct {
	Status      eventbus.HealthStatus `json:"status"`
	Equity      float64               `json:"equity"` // capital and realised PnL
	Peak        float64               `json:"peak"`
	Drawdown    float64               `json:"drawdown"`
	MaxDrawdown float64               `json:"max_drawdown"`
	Changes     int                   `json:"changes"`
	CriticalAt  float64               `json:"critical_at_s"` // 0 if never
}

func (h *HealthMonitor) state() HealthState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HealthState{
		Status: h.status, Equity: h.equity, Peak: h.peak, Drawdown: 1 - h.equity/h.peak,
		MaxDrawdown: h.maxDrawdown, Changes: h.changes, CriticalAt: h.criticalAt,
	}
}

func (s HealthState) String() string {
	return fmt.Sprintf("%s; realised equity %s (peak %s, drawdown %.1f%%, worst %.1f%%); %d status changes",
		s.Status, money(s.Equity), money(s.Peak), 100*s.Drawdown, 100*s.MaxDrawdown, s.Changes)
}

// Notifier is the Discord Notifier: it posts every health change to a
// webhook, with an alert for CRITICAL. The webhook is simulated, and
// flaky: it fails a seeded share of the calls, so the Notifier subscribes
// with Retry, and an alert that fails every attempt ends as a dead letter.
type Notifier struct {
	health   *eventbus.Topic[eventbus.HealthStatusChanged]
	failRate float64
	rng      *rand.Rand // used by the handler only: one delivery at a time

	mu       sync.Mutex
	calls    int
	failures int
	posted   []string
	alerts   int
}

// notifierAttempts is the Retry limit of the Notifier.
const notifierAttempts = 3

var errWebhook = errors.New("discord webhook: 503 Service Unavailable")

func newNotifier(bus *eventbus.Bus, seed uint64) *Notifier {
	return &Notifier{health: eventbus.HealthStatusChangedTopic(bus), failRate: 0.5, rng: newRand(seed, streamNotifier)}
}

func (n *Notifier) subscribe(w *wiring) error {
	return on(w, n.health, "Notifier", n.onHealth,
		eventbus.Retry(notifierAttempts, eventbus.ExponentialBackoff(5*time.Millisecond, 50*time.Millisecond)))
}

func (n *Notifier) onHealth(_ context.Context, ev eventbus.Event[eventbus.HealthStatusChanged]) error {
	p := ev.Payload
	msg := healthText(p)
	if p.NewStatus == eventbus.HealthStatusCritical {
		msg = "@here ALERT " + msg
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	if n.rng.Float64() < n.failRate {
		n.failures++
		return errWebhook
	}
	n.posted = append(n.posted, msg)
	if p.NewStatus == eventbus.HealthStatusCritical {
		n.alerts++
	}
	return nil
}

// healthText tells a health change, as the Notifier posts it and the
// timeline shows it.
func healthText(p eventbus.HealthStatusChanged) string {
	return fmt.Sprintf("%s %s → %s: %s", p.Component, p.OldStatus, p.NewStatus, p.Reason)
}

// NotifierState is the final state of the Notifier.
type NotifierState struct {
	Posted   []string `json:"posted"`
	Alerts   int      `json:"alerts"`
	Calls    int      `json:"webhook_calls"`
	Failures int      `json:"webhook_failures"`
}

func (n *Notifier) state() NotifierState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return NotifierState{Posted: slices.Clone(n.posted), Alerts: n.alerts, Calls: n.calls, Failures: n.failures}
}

func (s NotifierState) String() string {
	return fmt.Sprintf("%s posted (%s); the webhook failed %d of %d calls",
		count(uint64(len(s.Posted)), "message", "messages"), count(uint64(s.Alerts), "CRITICAL alert", "CRITICAL alerts"),
		s.Failures, s.Calls)
}

// IncidentLog subscribes to the bus's dead letters: every delivery that
// failed all the attempts its subscription allows, such as an alert the
// webhook refused three times, is recorded here rather than lost.
type IncidentLog struct {
	deadLetters *eventbus.Topic[eventbus.DeadLetter]

	mu        sync.Mutex
	incidents []string
}

func newIncidentLog(bus *eventbus.Bus) *IncidentLog {
	return &IncidentLog{deadLetters: eventbus.DeadLetters(bus)}
}

func (l *IncidentLog) subscribe(w *wiring) error {
	return on(w, l.deadLetters, "IncidentLog", l.onDeadLetter)
}

func (l *IncidentLog) onDeadLetter(_ context.Context, ev eventbus.Event[eventbus.DeadLetter]) error {
	d := ev.Payload
	l.mu.Lock()
	defer l.mu.Unlock()
	l.incidents = append(l.incidents, fmt.Sprintf("%s gave up on %s event %s after %d attempts: %s",
		d.Subscriber, d.Topic, d.EventID, d.Attempts, d.Error))
	return nil
}

// IncidentState is the final state of the Incident Log.
type IncidentState struct {
	Incidents []string `json:"incidents"`
}

func (l *IncidentLog) state() IncidentState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return IncidentState{Incidents: slices.Clone(l.incidents)}
}

func (s IncidentState) String() string {
	if len(s.Incidents) == 0 {
		return "no dead letters"
	}
	return fmt.Sprintf("%s; the last: %s", count(uint64(len(s.Incidents)), "dead letter", "dead letters"), s.Incidents[len(s.Incidents)-1])
}
