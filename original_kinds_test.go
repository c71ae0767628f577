package eventbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// Ports of the tests of the original Python system that concern the event
// kinds (see shared/seed/original-system.md). The original asserted on the
// event's type and its payload dict; the ports assert on the JSON the Go
// event puts on the wire, which is that dict, and on the typed payload.

// wireForm returns an event as the original saw it: the JSON object, and its
// payload.
func wireForm[T any](t *testing.T, payload T) (doc, p map[string]any) {
	t.Helper()
	data, err := json.Marshal(eventbus.Event[T]{Payload: payload})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &doc))
	p, ok := doc["payload"].(map[string]any)
	require.True(t, ok, "payload is an object in %s", data)
	return doc, p
}

func TestOriginal02PolicyUpdatedFactory(t *testing.T) {
	p := eventbus.NewPolicyUpdated(eventbus.RiskModeAggressive, []string{"strat1", "strat2"}, 0.65, 0.03, 10)
	doc, payload := wireForm(t, p)

	tests := []struct {
		name      string
		got, want any
	}{
		{"the type is policy.updated", doc["type"], "policy.updated"},
		{"the risk mode is the plain string AGGRESSIVE", payload["risk_mode"], "AGGRESSIVE"},
		{"two strategies are allowed", payload["allowed_strategies"], []any{"strat1", "strat2"}},
		{"the minimum confidence is 0.65", payload["global_min_confidence"], 0.65},
		{"the typed risk mode is AGGRESSIVE", p.RiskMode, eventbus.RiskModeAggressive},
		{"the typed payload allows two strategies", len(p.AllowedStrategies), 2},
		{"the typed minimum confidence is 0.65", p.GlobalMinConfidence, 0.65},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}

func TestOriginal03StrategyPromotedFactory(t *testing.T) {
	p := eventbus.NewStrategyPromoted("test_strat", eventbus.StrategyLifecycleShadow, eventbus.StrategyLifecycleLive, "Passed validation")
	p.Metrics["sharpe"] = 2.0
	doc, payload := wireForm(t, p)

	tests := []struct {
		name      string
		got, want any
	}{
		{"the type is strategy.promoted", doc["type"], "strategy.promoted"},
		{"the strategy id is test_strat", payload["strategy_id"], "test_strat"},
		{"the from stage is the plain string SHADOW", payload["from_stage"], "SHADOW"},
		{"the to stage is the plain string LIVE", payload["to_stage"], "LIVE"},
		{"the reason is kept", payload["reason"], "Passed validation"},
		{"the metrics are kept", payload["metrics"], map[string]any{"sharpe": 2.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}

func TestOriginal14MSCToOrchestrator(t *testing.T) {
	ctx := context.Background()
	bus, err := eventbus.New()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, bus.Close(ctx)) })
	policies := eventbus.PolicyUpdatedTopic(bus)

	received := make(chan eventbus.PolicyUpdated, 1)
	orchestrator := func(_ context.Context, ev eventbus.Event[eventbus.PolicyUpdated]) error {
		received <- ev.Payload
		return nil
	}
	_, err = policies.Subscribe(orchestrator, eventbus.Name("Orchestrator"))
	require.NoError(t, err)

	// MSC AI publishes a defensive policy; PublishWait returns once the
	// orchestrator has handled it.
	require.NoError(t, policies.PublishWait(ctx,
		eventbus.NewPolicyUpdated(eventbus.RiskModeDefensive, []string{"strat1"}, 0.75, 0.01, 3)))
	got := receivedNow(t, received)

	tests := []struct {
		name      string
		got, want any
	}{
		{"the orchestrator sees the DEFENSIVE risk mode", got.RiskMode, eventbus.RiskModeDefensive},
		{"the orchestrator sees at most 3 positions", got.MaxPositions, 3},
		{"the orchestrator sees the allowed strategy", got.AllowedStrategies, []string{"strat1"}},
		{"the orchestrator sees the policy came from MSC AI", got.UpdatedBy, "MSC_AI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}

func TestOriginal15HealthMonitorToDiscord(t *testing.T) {
	ctx := context.Background()
	bus, err := eventbus.New()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, bus.Close(ctx)) })
	health := eventbus.HealthStatusChangedTopic(bus)

	// The Discord notifier alerts on critical changes only.
	var mu sync.Mutex
	var alerts []string
	notifier := func(_ context.Context, ev eventbus.Event[eventbus.HealthStatusChanged]) error {
		p := ev.Payload
		if p.NewStatus != eventbus.HealthStatusCritical {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		alerts = append(alerts, fmt.Sprintf("%s is %s: %s", p.Component, p.NewStatus, p.Reason))
		return nil
	}
	_, err = health.Subscribe(notifier, eventbus.Name("DiscordNotifier"))
	require.NoError(t, err)

	change := eventbus.NewHealthStatusChanged(eventbus.HealthStatusHealthy, eventbus.HealthStatusCritical, "DrawdownGuard", "DD exceeded")
	change.Metrics["dd"] = -6.0
	require.NoError(t, health.PublishWait(ctx, change))

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"DrawdownGuard is CRITICAL: DD exceeded"}, alerts, "exactly one alert, naming the component")
}
