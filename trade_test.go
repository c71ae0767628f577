package eventbus_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantumtrader/eventbus"
)

func TestNewTradeExecuted(t *testing.T) {
	tests := []struct {
		name string
		got  eventbus.TradeExecuted
		want eventbus.TradeExecuted
	}{
		{
			"keeps its arguments, without model or pnl",
			eventbus.NewTradeExecuted("ORD_12345", "BTCUSDT", eventbus.SideBuy, 0.05, 42350.50, "strat1"),
			eventbus.TradeExecuted{
				OrderID:    "ORD_12345",
				Symbol:     "BTCUSDT",
				Side:       eventbus.SideBuy,
				Size:       0.05,
				Price:      42350.50,
				StrategyID: "strat1",
				Model:      nil,
				PnL:        nil,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("NewTradeExecuted() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTradeExecutedValidate(t *testing.T) {
	testValidate(t, sampleTrade, []validateCase[eventbus.TradeExecuted]{
		{"accepts the sample trade", func(*eventbus.TradeExecuted) {}, ""},
		{"accepts a sale", func(p *eventbus.TradeExecuted) { p.Side = eventbus.SideSell }, ""},
		{"accepts no model", func(p *eventbus.TradeExecuted) { p.Model = nil }, ""},
		{"accepts a loss", func(p *eventbus.TradeExecuted) { p.PnL = new(-120.5) }, ""},
		{"rejects an empty order id", func(p *eventbus.TradeExecuted) { p.OrderID = "" },
			"order_id: empty"},
		{"rejects an empty symbol", func(p *eventbus.TradeExecuted) { p.Symbol = "" },
			"symbol: empty"},
		{"rejects an unknown side", func(p *eventbus.TradeExecuted) { p.Side = "buy" },
			`side: unknown value "buy" (want BUY or SELL)`},
		{"rejects a zero size", func(p *eventbus.TradeExecuted) { p.Size = 0 },
			"size: 0 is not positive"},
		{"rejects a negative size", func(p *eventbus.TradeExecuted) { p.Size = -0.05 },
			"size: -0.05 is not positive"},
		{"rejects a NaN size", func(p *eventbus.TradeExecuted) { p.Size = math.NaN() },
			"size: NaN is not a finite number"},
		{"rejects a zero price", func(p *eventbus.TradeExecuted) { p.Price = 0 },
			"price: 0 is not positive"},
		{"rejects an infinite price", func(p *eventbus.TradeExecuted) { p.Price = math.Inf(1) },
			"price: +Inf is not a finite number"},
		{"rejects an empty strategy id", func(p *eventbus.TradeExecuted) { p.StrategyID = "" },
			"strategy_id: empty"},
		{"rejects an empty model name", func(p *eventbus.TradeExecuted) { p.Model = new("") },
			"model: empty; nil means no model"},
		{"rejects a NaN pnl", func(p *eventbus.TradeExecuted) { p.PnL = new(math.NaN()) },
			"pnl: NaN is not a finite number"},
	})
}
