package eventbus_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantumtrader/eventbus"
)

func TestNewOpportunitiesUpdated(t *testing.T) {
	tests := []struct {
		name string
		got  eventbus.OpportunitiesUpdated
		want eventbus.OpportunitiesUpdated
	}{
		{
			"keeps its arguments, with empty criteria and nothing excluded",
			eventbus.NewOpportunitiesUpdated([]string{"BTCUSDT"}, map[string]float64{"BTCUSDT": 0.95}),
			eventbus.OpportunitiesUpdated{
				TopSymbols:    []string{"BTCUSDT"},
				Scores:        map[string]float64{"BTCUSDT": 0.95},
				Criteria:      map[string]any{},
				ExcludedCount: 0,
			},
		},
		{
			"makes nil symbols and scores empty",
			eventbus.NewOpportunitiesUpdated(nil, nil),
			eventbus.OpportunitiesUpdated{
				TopSymbols: []string{},
				Scores:     map[string]float64{},
				Criteria:   map[string]any{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("NewOpportunitiesUpdated() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpportunitiesUpdatedValidate(t *testing.T) {
	testValidate(t, sampleOpportunities, []validateCase[eventbus.OpportunitiesUpdated]{
		{"accepts the sample ranking", func(*eventbus.OpportunitiesUpdated) {}, ""},
		{"accepts an empty ranking", func(p *eventbus.OpportunitiesUpdated) { *p = eventbus.NewOpportunitiesUpdated(nil, nil) }, ""},
		{"accepts negative scores", func(p *eventbus.OpportunitiesUpdated) { p.Scores["SOLUSDT"] = -0.2 }, ""},
		{"accepts criteria", func(p *eventbus.OpportunitiesUpdated) {
			p.Criteria = map[string]any{"min_volume": 1e6, "exclude": []any{"LUNAUSDT"}}
		}, ""},
		{"rejects an empty top symbol", func(p *eventbus.OpportunitiesUpdated) { p.TopSymbols[2] = "" },
			"top_symbols[2]: empty"},
		{"rejects a score for an empty symbol", func(p *eventbus.OpportunitiesUpdated) { p.Scores[""] = 0.5 },
			`scores[""]: empty symbol`},
		{"rejects a NaN score", func(p *eventbus.OpportunitiesUpdated) { p.Scores["ETHUSDT"] = math.NaN() },
			`scores["ETHUSDT"]: NaN is not a finite number`},
		{"rejects an infinity in the criteria", func(p *eventbus.OpportunitiesUpdated) {
			p.Criteria = map[string]any{"max_spread": math.Inf(1)}
		}, `criteria["max_spread"]: +Inf is not a finite number`},
		{"rejects a negative excluded count", func(p *eventbus.OpportunitiesUpdated) { p.ExcludedCount = -47 },
			"excluded_count: -47 is negative"},
	})
}
