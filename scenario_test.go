package eventbus_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// TestExampleProgramScenarios runs the scenarios of the original system's
// example program on the in-memory bus, with its producers and consumers: a
// policy change reaching the orchestrator, a strategy promotion, a health
// alert reaching the notifier, a burst of a ranking, a trade and a model
// promotion, and then the statistics. Analytics and the Metrics Logger
// subscribe to everything.
func TestExampleProgramScenarios(t *testing.T) {
	ctx := context.Background()
	bus, err := eventbus.New()
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close(ctx) }) // in case the test stops before its own Close

	policies := eventbus.PolicyUpdatedTopic(bus)
	strategies := eventbus.StrategyPromotedTopic(bus)
	health := eventbus.HealthStatusChangedTopic(bus)
	opportunities := eventbus.OpportunitiesUpdatedTopic(bus)
	trades := eventbus.TradeExecutedTopic(bus)
	models := eventbus.ModelPromotedTopic(bus)

	// Each consumer hands what it received to the test through a channel
	// with room for everything the test publishes, so no handler blocks.
	orchestrator := make(chan eventbus.PolicyUpdated, 6)
	runtimeEngine := make(chan any, 6) // strategy promotions and rankings
	notifier := make(chan string, 6)   // the alerts it sends
	ensemble := make(chan eventbus.ModelPromoted, 6)
	var (
		mu        sync.Mutex
		analytics []string       // the topics of the events it saw, in order
		logged    map[string]int // the Metrics Logger's count per topic
	)
	logged = map[string]int{}

	subscribe := func(_ *eventbus.Subscription, err error) { require.NoError(t, err) }
	subscribe(policies.Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.PolicyUpdated]) error {
		orchestrator <- ev.Payload
		return nil
	}, eventbus.Name("Orchestrator")))
	subscribe(strategies.Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.StrategyPromoted]) error {
		runtimeEngine <- ev.Payload
		return nil
	}, eventbus.Name("StrategyRuntimeEngine.promotions")))
	subscribe(opportunities.Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.OpportunitiesUpdated]) error {
		runtimeEngine <- ev.Payload
		return nil
	}, eventbus.Name("StrategyRuntimeEngine.opportunities")))
	subscribe(health.Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.HealthStatusChanged]) error {
		if p := ev.Payload; p.NewStatus == eventbus.HealthStatusCritical {
			notifier <- alertText(p)
		}
		return nil
	}, eventbus.Name("DiscordNotifier")))
	subscribe(models.Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.ModelPromoted]) error {
		ensemble <- ev.Payload
		return nil
	}, eventbus.Name("EnsembleManager")))
	subscribe(eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
		mu.Lock()
		defer mu.Unlock()
		analytics = append(analytics, ev.Topic)
		return nil
	}, eventbus.Name("Analytics")))
	subscribe(eventbus.SubscribeAll(bus, func(_ context.Context, ev eventbus.Event[any]) error {
		mu.Lock()
		defer mu.Unlock()
		logged[ev.Topic]++
		return nil
	}, eventbus.Name("MetricsLogger")))

	t.Run("a policy change reaches the orchestrator", func(t *testing.T) {
		policy := eventbus.NewPolicyUpdated(eventbus.RiskModeDefensive, []string{"strat1"}, 0.75, 0.01, 3)
		require.NoError(t, policies.PublishWait(ctx, policy))
		if diff := cmp.Diff(policy, receivedNow(t, orchestrator)); diff != "" {
			t.Errorf("the orchestrator's policy (-published +received):\n%s", diff)
		}
	})

	t.Run("a SHADOW to LIVE promotion reaches the strategy runtime engine", func(t *testing.T) {
		promotion := sampleStrategy()
		require.NoError(t, strategies.PublishWait(ctx, promotion))
		got := receivedNow(t, runtimeEngine)
		if diff := cmp.Diff(promotion, got); diff != "" {
			t.Errorf("the runtime engine's promotion (-published +received):\n%s", diff)
		}
	})

	t.Run("a CRITICAL drawdown reaches the notifier, which alerts with the metrics", func(t *testing.T) {
		require.NoError(t, health.PublishWait(ctx, sampleHealth()))
		assert.Equal(t,
			"DrawdownGuard: HEALTHY -> CRITICAL: Drawdown exceeded threshold (current_dd=-6.5 equity=94500 max_allowed_dd=-5)",
			receivedNow(t, notifier))
	})

	t.Run("a burst of a ranking, a trade and a model promotion reaches every consumer", func(t *testing.T) {
		ranking, trade, model := sampleOpportunities(), sampleTrade(), sampleModel()
		require.NoError(t, opportunities.Publish(ctx, ranking))
		require.NoError(t, trades.Publish(ctx, trade))
		require.NoError(t, models.Publish(ctx, model))
		closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		require.NoError(t, bus.Close(closeCtx), "Close waits until every event is handled")

		if diff := cmp.Diff(ranking, receivedNow(t, runtimeEngine)); diff != "" {
			t.Errorf("the runtime engine's ranking (-published +received):\n%s", diff)
		}
		if diff := cmp.Diff(model, receivedNow(t, ensemble)); diff != "" {
			t.Errorf("the ensemble manager's promotion (-published +received):\n%s", diff)
		}
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []string{
			"policy.updated", "strategy.promoted", "health.status_changed",
			"opportunities.updated", "trade.executed", "model.promoted",
		}, analytics, "analytics saw every event in publish order")
		assert.Equal(t, map[string]int{
			"policy.updated": 1, "strategy.promoted": 1, "health.status_changed": 1,
			"opportunities.updated": 1, "trade.executed": 1, "model.promoted": 1,
		}, logged, "the metrics logger counted every event once")
	})

	t.Run("the stats count every event and every delivery", func(t *testing.T) {
		// Six events; every one goes to Analytics and the Metrics Logger, and
		// all but the trade to one consumer of its own: 6*2 + 5 deliveries.
		want := eventbus.Stats{
			Published:     6,
			Counts:        eventbus.Counts{Dispatched: 17, Delivered: 17},
			HandlerTypes:  5, // the topics with a subscriber of their own: not trade.executed
			TotalHandlers: 7, // six consumers, the runtime engine subscribed twice
		}
		if diff := cmp.Diff(want, bus.Stats()); diff != "" {
			t.Errorf("Stats() (-want +got):\n%s", diff)
		}
	})
}

// receivedNow returns what a consumer has put on ch, and fails the test if
// it has put nothing. It does not wait: the test calls it after PublishWait
// or Close has guaranteed the delivery.
func receivedNow[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	default:
		t.Fatal("the consumer has received nothing")
		panic("unreachable")
	}
}

// alertText is the Discord notifier's message for a health change.
func alertText(p eventbus.HealthStatusChanged) string {
	var metrics []string
	for _, k := range slices.Sorted(maps.Keys(p.Metrics)) {
		metrics = append(metrics, fmt.Sprintf("%s=%v", k, p.Metrics[k]))
	}
	return fmt.Sprintf("%s: %s -> %s: %s (%s)", p.Component, p.OldStatus, p.NewStatus, p.Reason, strings.Join(metrics, " "))
}
