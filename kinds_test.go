package eventbus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// Valid payloads of the six kinds, with the values of the original example
// program; each call returns fresh maps and slices.

func samplePolicy() eventbus.PolicyUpdated {
	return eventbus.NewPolicyUpdated(eventbus.RiskModeDefensive, []string{"strat1"}, 0.75, 0.01, 3)
}

func sampleStrategy() eventbus.StrategyPromoted {
	p := eventbus.NewStrategyPromoted("strat_momentum_v3", eventbus.StrategyLifecycleShadow, eventbus.StrategyLifecycleLive, "Passed shadow validation")
	p.Metrics = map[string]float64{"sharpe_ratio": 2.1, "win_rate": 0.62, "avg_profit": 0.015}
	return p
}

func sampleModel() eventbus.ModelPromoted {
	return eventbus.NewModelPromoted("XGBoost", "v1.2.3", "v1.3.0", map[string]float64{"accuracy": 0.68, "f1_score": 0.71})
}

func sampleHealth() eventbus.HealthStatusChanged {
	p := eventbus.NewHealthStatusChanged(eventbus.HealthStatusHealthy, eventbus.HealthStatusCritical, "DrawdownGuard", "Drawdown exceeded threshold")
	p.Metrics = map[string]any{"current_dd": -6.5, "max_allowed_dd": -5.0, "equity": 94500.0}
	return p
}

func sampleOpportunities() eventbus.OpportunitiesUpdated {
	p := eventbus.NewOpportunitiesUpdated(
		[]string{"BTCUSDT", "ETHUSDT", "SOLUSDT"},
		map[string]float64{"BTCUSDT": 0.95, "ETHUSDT": 0.87, "SOLUSDT": 0.82},
	)
	p.ExcludedCount = 47
	return p
}

func sampleTrade() eventbus.TradeExecuted {
	p := eventbus.NewTradeExecuted("ORD_12345", "BTCUSDT", eventbus.SideBuy, 0.05, 42350.50, "strat_momentum_v3")
	p.Model = new("ensemble_v1")
	return p
}

// validateCase is one rule of a kind's Validate: edit breaks a valid
// payload, and want is the whole error, or "" where the edit is allowed.
type validateCase[T any] struct {
	name string
	edit func(*T)
	want string
}

func testValidate[T interface{ Validate() error }](t *testing.T, valid func() T, tests []validateCase[T]) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := valid()
			tt.edit(&p)
			err := p.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tt.want)
		})
	}
}

func TestEnumString(t *testing.T) {
	tests := []struct {
		name string
		v    fmt.Stringer
		want string
	}{
		{"a risk mode is its name", eventbus.RiskModeAggressive, "AGGRESSIVE"},
		{"another risk mode is its name", eventbus.RiskModeNormal, "NORMAL"},
		{"the last risk mode is its name", eventbus.RiskModeDefensive, "DEFENSIVE"},
		{"an unknown risk mode shows its type", eventbus.RiskMode("aggressive"), `eventbus.RiskMode("aggressive")`},
		{"a backtest stage is its name", eventbus.StrategyLifecycleBacktest, "BACKTEST"},
		{"a shadow stage is its name", eventbus.StrategyLifecycleShadow, "SHADOW"},
		{"a live stage is its name", eventbus.StrategyLifecycleLive, "LIVE"},
		{"a retired stage is its name", eventbus.StrategyLifecycleRetired, "RETIRED"},
		{"an empty stage shows its type", eventbus.StrategyLifecycle(""), `eventbus.StrategyLifecycle("")`},
		{"a healthy status is its name", eventbus.HealthStatusHealthy, "HEALTHY"},
		{"a degraded status is its name", eventbus.HealthStatusDegraded, "DEGRADED"},
		{"a critical status is its name", eventbus.HealthStatusCritical, "CRITICAL"},
		{"an unknown status shows its type", eventbus.HealthStatus("DOWN"), `eventbus.HealthStatus("DOWN")`},
		{"buy is its name", eventbus.SideBuy, "BUY"},
		{"sell is its name", eventbus.SideSell, "SELL"},
		{"an unknown side shows its type", eventbus.Side("HOLD"), `eventbus.Side("HOLD")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.v.String())
		})
	}
}

func TestKindLogValue(t *testing.T) {
	trade := sampleTrade()
	trade.PnL = new(-12.5)
	tests := []struct {
		name    string
		payload slog.LogValuer
		want    string
	}{
		{"a policy logs all its fields", samplePolicy(),
			`p.risk_mode=DEFENSIVE p.allowed_strategies=[strat1] p.global_min_confidence=0.75 p.max_risk_per_trade=0.01 p.max_positions=3 p.updated_by=MSC_AI`},
		{"a strategy promotion logs the strategy, stages and reason", sampleStrategy(),
			`p.strategy_id=strat_momentum_v3 p.from_stage=SHADOW p.to_stage=LIVE p.reason="Passed shadow validation"`},
		{"a model promotion logs the model and versions", sampleModel(),
			`p.model_name=XGBoost p.old_version=v1.2.3 p.new_version=v1.3.0`},
		{"a health change logs the component, statuses and reason", sampleHealth(),
			`p.component=DrawdownGuard p.old_status=HEALTHY p.new_status=CRITICAL p.reason="Drawdown exceeded threshold"`},
		{"a ranking logs the top symbols and excluded count", sampleOpportunities(),
			`p.top_symbols="[BTCUSDT ETHUSDT SOLUSDT]" p.excluded_count=47`},
		{"a trade without model or pnl leaves them out", eventbus.NewTradeExecuted("ORD_1", "ETHUSDT", eventbus.SideSell, 1, 2500, "s1"),
			`p.order_id=ORD_1 p.symbol=ETHUSDT p.side=SELL p.size=1 p.price=2500 p.strategy_id=s1`},
		{"a trade with model and pnl logs their values", trade,
			`p.order_id=ORD_12345 p.symbol=BTCUSDT p.side=BUY p.size=0.05 p.price=42350.5 p.strategy_id=strat_momentum_v3 p.model=ensemble_v1 p.pnl=-12.5`},
		{"an unknown enum value stands out", eventbus.NewStrategyPromoted("s", "PAPER", eventbus.StrategyLifecycleLive, ""),
			`p.strategy_id=s p.from_stage="eventbus.StrategyLifecycle(\"PAPER\")" p.to_stage=LIVE p.reason=""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
					if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
						return slog.Attr{}
					}
					return a
				},
			}))
			logger.Info("", "p", tt.payload)
			assert.Equal(t, tt.want, strings.TrimSpace(buf.String()))
		})
	}
}

func TestKindTopics(t *testing.T) {
	bus, err := eventbus.New()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, bus.Close(context.Background())) })

	type namer interface{ Name() string }
	tests := []struct {
		name      string
		topic     func(*eventbus.Bus) namer // the accessor
		eventType string
		want      string
	}{
		{"policy updates", func(b *eventbus.Bus) namer { return eventbus.PolicyUpdatedTopic(b) },
			eventbus.PolicyUpdated{}.EventType(), "policy.updated"},
		{"strategy promotions", func(b *eventbus.Bus) namer { return eventbus.StrategyPromotedTopic(b) },
			eventbus.StrategyPromoted{}.EventType(), "strategy.promoted"},
		{"model promotions", func(b *eventbus.Bus) namer { return eventbus.ModelPromotedTopic(b) },
			eventbus.ModelPromoted{}.EventType(), "model.promoted"},
		{"health changes", func(b *eventbus.Bus) namer { return eventbus.HealthStatusChangedTopic(b) },
			eventbus.HealthStatusChanged{}.EventType(), "health.status_changed"},
		{"opportunity rankings", func(b *eventbus.Bus) namer { return eventbus.OpportunitiesUpdatedTopic(b) },
			eventbus.OpportunitiesUpdated{}.EventType(), "opportunities.updated"},
		{"executed trades", func(b *eventbus.Bus) namer { return eventbus.TradeExecutedTopic(b) },
			eventbus.TradeExecuted{}.EventType(), "trade.executed"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" have a topic named after their type string", func(t *testing.T) {
			assert.Equal(t, tt.want, tt.topic(bus).Name())
			assert.Equal(t, tt.want, tt.eventType)
		})
		t.Run(tt.name+" have one topic however often it is asked for", func(t *testing.T) {
			assert.Same(t, tt.topic(bus), tt.topic(bus))
		})
	}
	t.Run("the type string constants are the original ones", func(t *testing.T) {
		got := []string{eventbus.PolicyUpdatedType, eventbus.StrategyPromotedType, eventbus.ModelPromotedType,
			eventbus.HealthStatusChangedType, eventbus.OpportunitiesUpdatedType, eventbus.TradeExecutedType}
		want := []string{"policy.updated", "strategy.promoted", "model.promoted",
			"health.status_changed", "opportunities.updated", "trade.executed"}
		assert.Equal(t, want, got)
	})
}

func TestKindTopicPanicsOnAnotherPayloadType(t *testing.T) {
	bus, err := eventbus.New()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, bus.Close(context.Background())) })
	_, err = eventbus.NewTopic[string](bus, eventbus.TradeExecutedType)
	require.NoError(t, err)

	defer func() {
		r := recover()
		err, _ := r.(error)
		assert.ErrorIs(t, err, eventbus.ErrTopicType)
	}()
	eventbus.TradeExecutedTopic(bus)
	t.Error("TradeExecutedTopic returned for a topic of strings")
}

// publishKind returns a function that subscribes a Sync handler counting
// deliveries to the topic of a kind, then publishes payload on it.
func publishKind[T any](topic func(*eventbus.Bus) *eventbus.Topic[T], payload T) func(*eventbus.Bus, *int) error {
	return func(bus *eventbus.Bus, received *int) error {
		t := topic(bus)
		if _, err := t.Subscribe(func(context.Context, eventbus.Event[T]) error {
			*received++
			return nil
		}, eventbus.Sync()); err != nil {
			return err
		}
		return t.Publish(context.Background(), payload)
	}
}

func TestKindPublishValidates(t *testing.T) {
	badPolicy := samplePolicy()
	badPolicy.MaxRiskPerTrade = 1.5
	badStrategy := sampleStrategy()
	badStrategy.ToStage = badStrategy.FromStage
	badModel := sampleModel()
	badModel.Metrics["accuracy"] = math.NaN()
	badHealth := sampleHealth()
	badHealth.Component = ""
	badOpportunities := sampleOpportunities()
	badOpportunities.ExcludedCount = -1
	badTrade := sampleTrade()
	badTrade.Price = 0

	tests := []struct {
		name    string
		publish func(*eventbus.Bus, *int) error
		topic   string
		want    string // the ValidationError's message; "" for a valid payload
	}{
		{"a valid policy is delivered", publishKind(eventbus.PolicyUpdatedTopic, samplePolicy()), "policy.updated", ""},
		{"a valid strategy promotion is delivered", publishKind(eventbus.StrategyPromotedTopic, sampleStrategy()), "strategy.promoted", ""},
		{"a valid model promotion is delivered", publishKind(eventbus.ModelPromotedTopic, sampleModel()), "model.promoted", ""},
		{"a valid health change is delivered", publishKind(eventbus.HealthStatusChangedTopic, sampleHealth()), "health.status_changed", ""},
		{"a valid ranking is delivered", publishKind(eventbus.OpportunitiesUpdatedTopic, sampleOpportunities()), "opportunities.updated", ""},
		{"a valid trade is delivered", publishKind(eventbus.TradeExecutedTopic, sampleTrade()), "trade.executed", ""},
		{"an invalid policy is rejected", publishKind(eventbus.PolicyUpdatedTopic, badPolicy), "policy.updated",
			"eventbus: invalid policy.updated payload: max_risk_per_trade: 1.5 is outside (0, 1]"},
		{"an invalid strategy promotion is rejected", publishKind(eventbus.StrategyPromotedTopic, badStrategy), "strategy.promoted",
			"eventbus: invalid strategy.promoted payload: to_stage: SHADOW is also from_stage: a promotion changes the stage"},
		{"an invalid model promotion is rejected", publishKind(eventbus.ModelPromotedTopic, badModel), "model.promoted",
			`eventbus: invalid model.promoted payload: metrics["accuracy"]: NaN is not a finite number`},
		{"an invalid health change is rejected", publishKind(eventbus.HealthStatusChangedTopic, badHealth), "health.status_changed",
			"eventbus: invalid health.status_changed payload: component: empty"},
		{"an invalid ranking is rejected", publishKind(eventbus.OpportunitiesUpdatedTopic, badOpportunities), "opportunities.updated",
			"eventbus: invalid opportunities.updated payload: excluded_count: -1 is negative"},
		{"an invalid trade is rejected", publishKind(eventbus.TradeExecutedTopic, badTrade), "trade.executed",
			"eventbus: invalid trade.executed payload: price: 0 is not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus, err := eventbus.New()
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, bus.Close(context.Background())) })

			var received int
			err = tt.publish(bus, &received)
			if tt.want == "" {
				assert.NoError(t, err)
				assert.Equal(t, 1, received, "deliveries")
				return
			}
			var verr *eventbus.ValidationError
			require.ErrorAs(t, err, &verr)
			assert.Equal(t, tt.topic, verr.Topic)
			assert.EqualError(t, err, tt.want)
			assert.Zero(t, received, "deliveries")
			assert.Zero(t, bus.Stats().Published, "published")
		})
	}
}

// Publish validates every event, so a valid payload must pass without
// allocating.
func TestKindValidateDoesNotAllocate(t *testing.T) {
	health := sampleHealth()
	health.Metrics["history"] = []any{map[string]any{"dd": -1.5}, []float64{1, 2}, "note", true, nil}
	trade := sampleTrade()
	trade.PnL = new(3.5)
	tests := []struct {
		name    string
		payload interface{ Validate() error }
	}{
		{"a policy", samplePolicy()},
		{"a strategy promotion", sampleStrategy()},
		{"a model promotion", sampleModel()},
		{"a health change with nested metrics", health},
		{"a ranking", sampleOpportunities()},
		{"a trade with model and pnl", trade},
	}
	for _, tt := range tests {
		t.Run(tt.name+" validates without allocating", func(t *testing.T) {
			require.NoError(t, tt.payload.Validate())
			allocs := testing.AllocsPerRun(100, func() { _ = tt.payload.Validate() })
			assert.Zero(t, allocs)
		})
	}
}

// Maps of metrics are checked at any depth, whatever Go types hold the
// numbers, and the error names one bad value whatever the map order.
func TestValidateFindsBadNumbersAtAnyDepth(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	type reading struct {
		DD     float64
		hidden float64
	}
	tests := []struct {
		name    string
		metrics map[string]any
		want    string
	}{
		{"numbers of every JSON shape are accepted",
			map[string]any{"a": 1.5, "b": "text", "c": true, "d": nil, "e": []any{1.0, map[string]any{"f": 2.0}}}, ""},
		{"numbers of other Go types are accepted",
			map[string]any{"i": 3, "f": float32(1.5), "m": map[int]float64{1: 2}, "s": reading{DD: -1}, "p": new(2.0), "nilp": (*float64)(nil)}, ""},
		{"a NaN at the top level is named",
			map[string]any{"dd": math.NaN()}, `metrics["dd"]: NaN is not a finite number`},
		{"an infinity in a nested map is named by its path",
			map[string]any{"a": map[string]any{"b": math.Inf(-1)}}, `metrics["a"]["b"]: -Inf is not a finite number`},
		{"a NaN in a list is named by its index",
			map[string]any{"a": []any{1.0, map[string]any{"b": []any{math.NaN()}}}}, `metrics["a"][1]["b"][0]: NaN is not a finite number`},
		{"a NaN in a float slice is found",
			map[string]any{"a": []float64{0, math.NaN()}}, `metrics["a"][1]: NaN is not a finite number`},
		{"a NaN in a float map is found",
			map[string]any{"a": map[string]float64{"x": math.Inf(1)}}, `metrics["a"]["x"]: +Inf is not a finite number`},
		{"a float32 infinity is found",
			map[string]any{"a": []float32{1, float32(math.Inf(1))}}, `metrics["a"][1]: +Inf is not a finite number`},
		{"a NaN in an int-keyed map is found",
			map[string]any{"a": map[int]float64{3: math.NaN()}}, `metrics["a"][3]: NaN is not a finite number`},
		{"a NaN in an exported struct field is found",
			map[string]any{"a": reading{DD: math.NaN()}}, `metrics["a"].DD: NaN is not a finite number`},
		{"an unexported struct field is not looked at, as JSON does not encode it",
			map[string]any{"a": reading{hidden: math.NaN()}}, ""},
		{"a NaN behind a pointer is found",
			map[string]any{"a": new(math.NaN())}, `metrics["a"]: NaN is not a finite number`},
		{"of several bad values the one with the smallest key is named",
			map[string]any{"d": math.NaN(), "b": math.Inf(1), "c": math.NaN(), "e": math.NaN()}, `metrics["b"]: +Inf is not a finite number`},
		{"a cyclic map is rejected rather than followed forever",
			cyclic, "metrics" + strings.Repeat(`["self"]`, 65) + ": nested deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sampleHealth()
			p.Metrics = tt.metrics
			for range 10 { // map order changes from run to run
				err := p.Validate()
				if tt.want == "" {
					require.NoError(t, err)
					continue
				}
				require.EqualError(t, err, tt.want)
			}
		})
	}
}

// A Validate error names every broken field, so one round of fixes suffices.
func TestValidateReportsEveryBrokenField(t *testing.T) {
	p := eventbus.TradeExecuted{Side: "HOLD", Size: -1, Price: math.NaN()}
	err := p.Validate()
	want := []string{
		"order_id: empty",
		"symbol: empty",
		`side: unknown value "HOLD" (want BUY or SELL)`,
		"size: -1 is not positive",
		"price: NaN is not a finite number",
		"strategy_id: empty",
	}
	require.Error(t, err)
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Validate() error lines (-want +got):\n%s", diff)
	}
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined))
	assert.Len(t, joined.Unwrap(), len(want))
}
