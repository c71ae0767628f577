package eventbus_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantumtrader/eventbus"
)

func TestNewModelPromoted(t *testing.T) {
	tests := []struct {
		name string
		got  eventbus.ModelPromoted
		want eventbus.ModelPromoted
	}{
		{
			"keeps its arguments and has an empty shadow performance",
			eventbus.NewModelPromoted("XGBoost", "v1.2.3", "v1.3.0", map[string]float64{"accuracy": 0.68}),
			eventbus.ModelPromoted{
				ModelName:         "XGBoost",
				OldVersion:        "v1.2.3",
				NewVersion:        "v1.3.0",
				Metrics:           map[string]float64{"accuracy": 0.68},
				ShadowPerformance: map[string]float64{},
			},
		},
		{
			"makes nil metrics empty",
			eventbus.NewModelPromoted("NHiTS", "", "v1", nil),
			eventbus.ModelPromoted{
				ModelName:         "NHiTS",
				NewVersion:        "v1",
				Metrics:           map[string]float64{},
				ShadowPerformance: map[string]float64{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("NewModelPromoted() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModelPromotedValidate(t *testing.T) {
	testValidate(t, sampleModel, []validateCase[eventbus.ModelPromoted]{
		{"accepts the sample promotion", func(*eventbus.ModelPromoted) {}, ""},
		{"accepts a first version, with no old one", func(p *eventbus.ModelPromoted) { p.OldVersion = "" }, ""},
		{"accepts a shadow performance", func(p *eventbus.ModelPromoted) { p.ShadowPerformance["sharpe"] = 1.8 }, ""},
		{"rejects an empty model name", func(p *eventbus.ModelPromoted) { p.ModelName = "" },
			"model_name: empty"},
		{"rejects an empty new version", func(p *eventbus.ModelPromoted) { p.NewVersion = "" },
			"new_version: empty"},
		{"rejects a promotion to the version in service", func(p *eventbus.ModelPromoted) { p.NewVersion = "v1.2.3" },
			`new_version: "v1.2.3" is also old_version: a promotion changes the version`},
		{"rejects a NaN metric", func(p *eventbus.ModelPromoted) { p.Metrics["f1_score"] = math.NaN() },
			`metrics["f1_score"]: NaN is not a finite number`},
		{"rejects an infinite shadow figure", func(p *eventbus.ModelPromoted) { p.ShadowPerformance["pnl"] = math.Inf(1) },
			`shadow_performance["pnl"]: +Inf is not a finite number`},
	})
}
