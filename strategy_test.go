package eventbus_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantumtrader/eventbus"
)

func TestNewStrategyPromoted(t *testing.T) {
	tests := []struct {
		name string
		got  eventbus.StrategyPromoted
		want eventbus.StrategyPromoted
	}{
		{
			"keeps its arguments and has empty metrics",
			eventbus.NewStrategyPromoted("test_strat", eventbus.StrategyLifecycleShadow, eventbus.StrategyLifecycleLive, "Passed validation"),
			eventbus.StrategyPromoted{
				StrategyID: "test_strat",
				FromStage:  eventbus.StrategyLifecycleShadow,
				ToStage:    eventbus.StrategyLifecycleLive,
				Reason:     "Passed validation",
				Metrics:    map[string]float64{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("NewStrategyPromoted() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStrategyPromotedValidate(t *testing.T) {
	testValidate(t, sampleStrategy, []validateCase[eventbus.StrategyPromoted]{
		{"accepts the sample promotion", func(*eventbus.StrategyPromoted) {}, ""},
		{"accepts a retirement", func(p *eventbus.StrategyPromoted) { p.ToStage = eventbus.StrategyLifecycleRetired }, ""},
		{"accepts a promotion out of backtest", func(p *eventbus.StrategyPromoted) { p.FromStage = eventbus.StrategyLifecycleBacktest }, ""},
		{"accepts no reason", func(p *eventbus.StrategyPromoted) { p.Reason = "" }, ""},
		{"accepts no metrics", func(p *eventbus.StrategyPromoted) { p.Metrics = nil }, ""},
		{"rejects an empty strategy id", func(p *eventbus.StrategyPromoted) { p.StrategyID = "" },
			"strategy_id: empty"},
		{"rejects an unknown from stage", func(p *eventbus.StrategyPromoted) { p.FromStage = "PAPER" },
			`from_stage: unknown value "PAPER" (want BACKTEST, SHADOW, LIVE or RETIRED)`},
		{"rejects an unknown to stage", func(p *eventbus.StrategyPromoted) { p.ToStage = "live" },
			`to_stage: unknown value "live" (want BACKTEST, SHADOW, LIVE or RETIRED)`},
		{"rejects a promotion to the stage it is in", func(p *eventbus.StrategyPromoted) { p.ToStage = eventbus.StrategyLifecycleShadow },
			"to_stage: SHADOW is also from_stage: a promotion changes the stage"},
		{"rejects a NaN metric", func(p *eventbus.StrategyPromoted) { p.Metrics["sharpe_ratio"] = math.NaN() },
			`metrics["sharpe_ratio"]: NaN is not a finite number`},
		{"rejects an infinite metric", func(p *eventbus.StrategyPromoted) { p.Metrics["win_rate"] = math.Inf(-1) },
			`metrics["win_rate"]: -Inf is not a finite number`},
	})
}
