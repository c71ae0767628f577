package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/quantumtrader/eventbus"
)

// The Meta Strategy Controller publishes a policy; the Orchestrator reacts.
func ExamplePolicyUpdatedTopic() {
	ctx := context.Background()
	bus, err := eventbus.New()
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)

	policies := eventbus.PolicyUpdatedTopic(bus)
	_, err = policies.Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.PolicyUpdated]) error {
		p := ev.Payload
		fmt.Printf("orchestrator: %s, at most %d positions, %s\n", p.RiskMode, p.MaxPositions, p.AllowedStrategies)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	policy := eventbus.NewPolicyUpdated(eventbus.RiskModeDefensive, []string{"strat1"}, 0.75, 0.01, 3)
	if err := policies.PublishWait(ctx, policy); err != nil {
		log.Fatal(err)
	}
	// Output:
	// orchestrator: DEFENSIVE, at most 3 positions, [strat1]
}

func ExamplePolicyUpdated_Validate() {
	policy := eventbus.NewPolicyUpdated(eventbus.RiskModeAggressive, []string{"strat1", "strat2"}, 0.65, 1.5, 10)
	fmt.Println(policy.Validate())
	// Output:
	// max_risk_per_trade: 1.5 is outside (0, 1]
}

// Publish validates a payload first, and delivers nothing if it is invalid.
func ExampleHealthStatusChangedTopic() {
	ctx := context.Background()
	bus, err := eventbus.New()
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close(ctx)

	change := eventbus.NewHealthStatusChanged(eventbus.HealthStatusHealthy, "DOWN", "", "feed lost")
	err = eventbus.HealthStatusChangedTopic(bus).Publish(ctx, change)
	var invalid *eventbus.ValidationError
	if errors.As(err, &invalid) {
		fmt.Println("rejected on", invalid.Topic)
		fmt.Println(invalid.Err)
	}
	// Output:
	// rejected on health.status_changed
	// new_status: unknown value "DOWN" (want HEALTHY, DEGRADED or CRITICAL)
	// component: empty
}

func ExampleEvent_MarshalJSON() {
	trade := eventbus.NewTradeExecuted("ORD_12345", "BTCUSDT", eventbus.SideBuy, 0.05, 42350.50, "strat_momentum_v3")
	trade.Model = new("ensemble_v1")
	ev := eventbus.Event[eventbus.TradeExecuted]{
		Time:    time.Date(2025, 1, 15, 10, 30, 0, 123456000, time.UTC),
		Payload: trade,
	}

	data, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(data))
	// Output:
	// {
	//   "type": "trade.executed",
	//   "timestamp": "2025-01-15T10:30:00.123456000Z",
	//   "payload": {
	//     "order_id": "ORD_12345",
	//     "symbol": "BTCUSDT",
	//     "side": "BUY",
	//     "size": 0.05,
	//     "price": 42350.5,
	//     "strategy_id": "strat_momentum_v3",
	//     "model": "ensemble_v1",
	//     "pnl": null
	//   }
	// }
}

// An event written by the original Python system decodes; its zone-less
// timestamp means UTC.
func ExampleEvent_UnmarshalJSON() {
	doc := `{"type": "opportunities.updated", "timestamp": "2025-01-15T10:30:00.123456",
		"payload": {"top_symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
			"scores": {"BTCUSDT": 0.95, "ETHUSDT": 0.87, "SOLUSDT": 0.82},
			"criteria": {}, "excluded_count": 47}}`

	var ev eventbus.Event[eventbus.OpportunitiesUpdated]
	if err := json.Unmarshal([]byte(doc), &ev); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Topic, ev.Time)
	fmt.Println(ev.Payload.TopSymbols, ev.Payload.Scores["BTCUSDT"], ev.Payload.ExcludedCount)

	// A document of another kind is refused.
	var trade eventbus.Event[eventbus.TradeExecuted]
	fmt.Println(json.Unmarshal([]byte(doc), &trade))
	// Output:
	// opportunities.updated 2025-01-15 10:30:00.123456 +0000 UTC
	// [BTCUSDT ETHUSDT SOLUSDT] 0.95 47
	// eventbus: decoding event: type "opportunities.updated" is not trade.executed
}

func ExampleTradeExecuted_LogValue() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // for a stable output
			}
			return a
		},
	}))

	trade := eventbus.NewTradeExecuted("ORD_12345", "BTCUSDT", eventbus.SideBuy, 0.05, 42350.50, "strat_momentum_v3")
	logger.Info("filled", "trade", trade)
	// Output:
	// level=INFO msg=filled trade.order_id=ORD_12345 trade.symbol=BTCUSDT trade.side=BUY trade.size=0.05 trade.price=42350.5 trade.strategy_id=strat_momentum_v3
}
