package eventbus_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantumtrader/eventbus"
)

func TestNewPolicyUpdated(t *testing.T) {
	tests := []struct {
		name string
		got  eventbus.PolicyUpdated
		want eventbus.PolicyUpdated
	}{
		{
			"keeps its arguments and is updated by MSC_AI",
			eventbus.NewPolicyUpdated(eventbus.RiskModeAggressive, []string{"strat1", "strat2"}, 0.65, 0.03, 10),
			eventbus.PolicyUpdated{
				RiskMode:            eventbus.RiskModeAggressive,
				AllowedStrategies:   []string{"strat1", "strat2"},
				GlobalMinConfidence: 0.65,
				MaxRiskPerTrade:     0.03,
				MaxPositions:        10,
				UpdatedBy:           "MSC_AI",
			},
		},
		{
			"makes nil allowed strategies an empty list",
			eventbus.NewPolicyUpdated(eventbus.RiskModeDefensive, nil, 0.75, 0.01, 0),
			eventbus.PolicyUpdated{
				RiskMode:            eventbus.RiskModeDefensive,
				AllowedStrategies:   []string{},
				GlobalMinConfidence: 0.75,
				MaxRiskPerTrade:     0.01,
				UpdatedBy:           "MSC_AI",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("NewPolicyUpdated() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyUpdatedValidate(t *testing.T) {
	testValidate(t, samplePolicy, []validateCase[eventbus.PolicyUpdated]{
		{"accepts the sample policy", func(*eventbus.PolicyUpdated) {}, ""},
		{"accepts every risk mode", func(p *eventbus.PolicyUpdated) { p.RiskMode = eventbus.RiskModeNormal }, ""},
		{"accepts no allowed strategies", func(p *eventbus.PolicyUpdated) { p.AllowedStrategies = nil }, ""},
		{"accepts confidence 0", func(p *eventbus.PolicyUpdated) { p.GlobalMinConfidence = 0 }, ""},
		{"accepts confidence 1", func(p *eventbus.PolicyUpdated) { p.GlobalMinConfidence = 1 }, ""},
		{"accepts risking all per trade", func(p *eventbus.PolicyUpdated) { p.MaxRiskPerTrade = 1 }, ""},
		{"accepts no positions", func(p *eventbus.PolicyUpdated) { p.MaxPositions = 0 }, ""},
		{"rejects an unknown risk mode", func(p *eventbus.PolicyUpdated) { p.RiskMode = "RECKLESS" },
			`risk_mode: unknown value "RECKLESS" (want AGGRESSIVE, NORMAL or DEFENSIVE)`},
		{"rejects a risk mode in lower case", func(p *eventbus.PolicyUpdated) { p.RiskMode = "defensive" },
			`risk_mode: unknown value "defensive" (want AGGRESSIVE, NORMAL or DEFENSIVE)`},
		{"rejects an empty risk mode", func(p *eventbus.PolicyUpdated) { p.RiskMode = "" },
			`risk_mode: unknown value "" (want AGGRESSIVE, NORMAL or DEFENSIVE)`},
		{"rejects an empty strategy id", func(p *eventbus.PolicyUpdated) { p.AllowedStrategies = []string{"strat1", ""} },
			"allowed_strategies[1]: empty"},
		{"rejects confidence below 0", func(p *eventbus.PolicyUpdated) { p.GlobalMinConfidence = -0.1 },
			"global_min_confidence: -0.1 is outside [0, 1]"},
		{"rejects confidence above 1", func(p *eventbus.PolicyUpdated) { p.GlobalMinConfidence = 1.01 },
			"global_min_confidence: 1.01 is outside [0, 1]"},
		{"rejects a NaN confidence", func(p *eventbus.PolicyUpdated) { p.GlobalMinConfidence = math.NaN() },
			"global_min_confidence: NaN is not a finite number"},
		{"rejects risking nothing per trade", func(p *eventbus.PolicyUpdated) { p.MaxRiskPerTrade = 0 },
			"max_risk_per_trade: 0 is outside (0, 1]"},
		{"rejects risking more than all per trade", func(p *eventbus.PolicyUpdated) { p.MaxRiskPerTrade = 1.5 },
			"max_risk_per_trade: 1.5 is outside (0, 1]"},
		{"rejects a negative risk per trade", func(p *eventbus.PolicyUpdated) { p.MaxRiskPerTrade = -0.01 },
			"max_risk_per_trade: -0.01 is outside (0, 1]"},
		{"rejects an infinite risk per trade", func(p *eventbus.PolicyUpdated) { p.MaxRiskPerTrade = math.Inf(1) },
			"max_risk_per_trade: +Inf is not a finite number"},
		{"rejects negative max positions", func(p *eventbus.PolicyUpdated) { p.MaxPositions = -1 },
			"max_positions: -1 is negative"},
		{"rejects an empty producer", func(p *eventbus.PolicyUpdated) { p.UpdatedBy = "" },
			"updated_by: empty"},
	})
}
