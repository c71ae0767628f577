package eventbus

import (
	"errors"
	"log/slog"
)

// TradeExecutedType is the type string of TradeExecuted events on the wire
// and the name of their topic (see TradeExecutedTopic).
const TradeExecutedType = "trade.executed"

// Side is the direction of a trade. Its values are their own names, as in
// the original system's JSON; any other value is invalid.
type Side string

// The sides of a trade.
const (
	// SideBuy buys the symbol's base asset.
	SideBuy Side = "BUY"
	// SideSell sells the symbol's base asset.
	SideSell Side = "SELL"
)

var sides = []Side{SideBuy, SideSell}

// String returns the side's name, or Side("...") for an unknown value, so
// that an invalid side stands out in logs.
func (s Side) String() string { return enumString(s, sides) }

// TradeExecuted is the payload of a trade.executed event: the Executor had an
// order filled. Analytics and the Metrics Logger record it.
//
// Its JSON form is the original system's payload: the keys of the struct
// tags, in this order. Model and PnL are optional: nil encodes as null, and
// both keys are always present, as in the original.
type TradeExecuted struct {
	OrderID    string   `json:"order_id"`
	Symbol     string   `json:"symbol"` // e.g. "BTCUSDT"
	Side       Side     `json:"side"`
	Size       float64  `json:"size"`  // in units of the base asset
	Price      float64  `json:"price"` // the fill price
	StrategyID string   `json:"strategy_id"`
	Model      *string  `json:"model"` // the model behind the signal, if any
	PnL        *float64 `json:"pnl"`   // realised profit or loss, if known
}

// NewTradeExecuted returns the TradeExecuted the original factory built from
// these arguments, with a nil Model and PnL (set the fields to add them). It
// does not validate; Publish does.
func NewTradeExecuted(orderID, symbol string, side Side, size, price float64, strategyID string) TradeExecuted {
	return TradeExecuted{
		OrderID:    orderID,
		Symbol:     symbol,
		Side:       side,
		Size:       size,
		Price:      price,
		StrategyID: strategyID,
	}
}

// TradeExecutedTopic returns bus's topic of TradeExecuted events, named
// TradeExecutedType, creating it on first use; every call returns the same
// *Topic. It takes the bus's lock, so keep the result rather than calling it
// for every event. It panics if a topic of that name was created with
// another payload type.
func TradeExecutedTopic(bus *Bus) *Topic[TradeExecuted] {
	return MustTopic[TradeExecuted](bus, TradeExecutedType)
}

// EventType returns TradeExecutedType, the type string Event's JSON methods
// require of a TradeExecuted event.
func (TradeExecuted) EventType() string { return TradeExecutedType }

// Validate returns nil if p is a trade the trading system may record, and
// otherwise an error naming, by JSON key, each field that is wrong: OrderID,
// Symbol and StrategyID must not be empty, Side must be SideBuy or SideSell,
// Size and Price must be positive and finite, Model, if set, must not be
// empty (nil means none), and PnL, if set, must be finite. Publish calls it.
func (p TradeExecuted) Validate() error {
	return errors.Join(
		checkNotEmpty("order_id", p.OrderID),
		checkNotEmpty("symbol", p.Symbol),
		checkEnum("side", p.Side, sides),
		checkPositive("size", p.Size),
		checkPositive("price", p.Price),
		checkNotEmpty("strategy_id", p.StrategyID),
		checkModel(p.Model),
		checkPnL(p.PnL),
	)
}

func checkModel(model *string) error {
	if model != nil && *model == "" {
		return fieldErr("model", "empty; nil means no model")
	}
	return nil
}

func checkPnL(pnl *float64) error {
	if pnl != nil {
		return checkFinite("pnl", *pnl)
	}
	return nil
}

// LogValue implements slog.LogValuer, so that a logged TradeExecuted reads
// as a short group of its fields; Model and PnL appear only when set.
func (p TradeExecuted) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs,
		slog.String("order_id", p.OrderID),
		slog.String("symbol", p.Symbol),
		slog.String("side", p.Side.String()),
		slog.Float64("size", p.Size),
		slog.Float64("price", p.Price),
		slog.String("strategy_id", p.StrategyID),
	)
	if p.Model != nil {
		attrs = append(attrs, slog.String("model", *p.Model))
	}
	if p.PnL != nil {
		attrs = append(attrs, slog.Float64("pnl", *p.PnL))
	}
	return slog.GroupValue(attrs...)
}
