package eventbus_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantumtrader/eventbus"
)

func TestNewHealthStatusChanged(t *testing.T) {
	tests := []struct {
		name string
		got  eventbus.HealthStatusChanged
		want eventbus.HealthStatusChanged
	}{
		{
			"keeps its arguments and has empty metrics",
			eventbus.NewHealthStatusChanged(eventbus.HealthStatusHealthy, eventbus.HealthStatusCritical, "DrawdownGuard", "DD exceeded"),
			eventbus.HealthStatusChanged{
				OldStatus: eventbus.HealthStatusHealthy,
				NewStatus: eventbus.HealthStatusCritical,
				Component: "DrawdownGuard",
				Reason:    "DD exceeded",
				Metrics:   map[string]any{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("NewHealthStatusChanged() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHealthStatusChangedValidate(t *testing.T) {
	testValidate(t, sampleHealth, []validateCase[eventbus.HealthStatusChanged]{
		{"accepts the sample change", func(*eventbus.HealthStatusChanged) {}, ""},
		{"accepts a recovery", func(p *eventbus.HealthStatusChanged) {
			p.OldStatus, p.NewStatus = eventbus.HealthStatusDegraded, eventbus.HealthStatusHealthy
		}, ""},
		{"accepts no reason", func(p *eventbus.HealthStatusChanged) { p.Reason = "" }, ""},
		{"accepts metrics of any JSON value", func(p *eventbus.HealthStatusChanged) {
			p.Metrics["history"] = []any{-1.0, "spike", true, nil, map[string]any{"max": 3.0}}
		}, ""},
		{"rejects an unknown old status", func(p *eventbus.HealthStatusChanged) { p.OldStatus = "UNKNOWN" },
			`old_status: unknown value "UNKNOWN" (want HEALTHY, DEGRADED or CRITICAL)`},
		{"rejects an unknown new status", func(p *eventbus.HealthStatusChanged) { p.NewStatus = "critical" },
			`new_status: unknown value "critical" (want HEALTHY, DEGRADED or CRITICAL)`},
		{"rejects an empty component", func(p *eventbus.HealthStatusChanged) { p.Component = "" },
			"component: empty"},
		{"rejects a NaN metric", func(p *eventbus.HealthStatusChanged) { p.Metrics["equity"] = math.NaN() },
			`metrics["equity"]: NaN is not a finite number`},
		{"rejects an infinity nested in a metric", func(p *eventbus.HealthStatusChanged) {
			p.Metrics["window"] = map[string]any{"dd": []any{-1.0, math.Inf(-1)}}
		}, `metrics["window"]["dd"][1]: -Inf is not a finite number`},
	})
}
