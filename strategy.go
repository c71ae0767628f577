package eventbus

import (
	"errors"
	"log/slog"
)

// StrategyPromotedType is the type string of StrategyPromoted events on the
// wire and the name of their topic (see StrategyPromotedTopic).
const StrategyPromotedType = "strategy.promoted"

// StrategyLifecycle is a stage in the life of a trading strategy. Its values
// are their own names, as in the original system's JSON; any other value is
// invalid.
type StrategyLifecycle string

// The stages of a strategy, in the order a successful one goes through them.
const (
	// StrategyLifecycleBacktest is the stage of a strategy tested on
	// historical data only.
	StrategyLifecycleBacktest StrategyLifecycle = "BACKTEST"
	// StrategyLifecycleShadow is the stage of a strategy that runs on live
	// data without trading.
	StrategyLifecycleShadow StrategyLifecycle = "SHADOW"
	// StrategyLifecycleLive is the stage of a strategy that trades.
	StrategyLifecycleLive StrategyLifecycle = "LIVE"
	// StrategyLifecycleRetired is the stage of a strategy that no longer runs.
	StrategyLifecycleRetired StrategyLifecycle = "RETIRED"
)

var strategyLifecycles = []StrategyLifecycle{
	StrategyLifecycleBacktest, StrategyLifecycleShadow, StrategyLifecycleLive, StrategyLifecycleRetired,
}

// String returns the stage's name, or StrategyLifecycle("...") for an
// unknown value, so that an invalid stage stands out in logs.
func (s StrategyLifecycle) String() string { return enumString(s, strategyLifecycles) }

// StrategyPromoted is the payload of a strategy.promoted event: the Strategy
// Generator AI moved a strategy from one stage to another. The Strategy
// Runtime Engine acts on it.
//
// Its JSON form is the original system's payload: the keys of the struct
// tags, in this order. NewStrategyPromoted applies the original defaults; a
// nil Metrics encodes as null, which the original never wrote. Handlers of
// one event share its Metrics and must not modify it.
type StrategyPromoted struct {
	StrategyID string             `json:"strategy_id"`
	FromStage  StrategyLifecycle  `json:"from_stage"`
	ToStage    StrategyLifecycle  `json:"to_stage"`
	Reason     string             `json:"reason"`  // for humans
	Metrics    map[string]float64 `json:"metrics"` // the figures that justified it, e.g. "sharpe_ratio"
}

// NewStrategyPromoted returns the StrategyPromoted the original factory
// built from these arguments, with an empty Metrics (set the field to add
// figures). It does not validate; Publish does.
func NewStrategyPromoted(strategyID string, fromStage, toStage StrategyLifecycle, reason string) StrategyPromoted {
	return StrategyPromoted{
		StrategyID: strategyID,
		FromStage:  fromStage,
		ToStage:    toStage,
		Reason:     reason,
		Metrics:    map[string]float64{},
	}
}

// StrategyPromotedTopic returns bus's topic of StrategyPromoted events, named
// StrategyPromotedType, creating it on first use; every call returns the
// same *Topic. It takes the bus's lock, so keep the result rather than
// calling it for every event. It panics if a topic of that name was created
// with another payload type.
func StrategyPromotedTopic(bus *Bus) *Topic[StrategyPromoted] {
	return MustTopic[StrategyPromoted](bus, StrategyPromotedType)
}

// EventType returns StrategyPromotedType, the type string Event's JSON
// methods require of a StrategyPromoted event.
func (StrategyPromoted) EventType() string { return StrategyPromotedType }

// Validate returns nil if p is a promotion the trading system may act on,
// and otherwise an error naming, by JSON key, each field that is wrong:
// StrategyID must not be empty, FromStage and ToStage must be
// StrategyLifecycle constants and differ, and no Metrics value may be NaN or
// infinite. Publish calls it.
func (p StrategyPromoted) Validate() error {
	return errors.Join(
		checkNotEmpty("strategy_id", p.StrategyID),
		checkEnum("from_stage", p.FromStage, strategyLifecycles),
		checkEnum("to_stage", p.ToStage, strategyLifecycles),
		checkStageChange(p.FromStage, p.ToStage),
		checkMap("metrics", p.Metrics, badFloat),
	)
}

func checkStageChange(from, to StrategyLifecycle) error {
	if from == to {
		return fieldErr("to_stage", "%s is also from_stage: a promotion changes the stage", to)
	}
	return nil
}

// LogValue implements slog.LogValuer, so that a logged StrategyPromoted
// reads as a short group: the strategy, both stages and the reason.
func (p StrategyPromoted) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("strategy_id", p.StrategyID),
		slog.String("from_stage", p.FromStage.String()),
		slog.String("to_stage", p.ToStage.String()),
		slog.String("reason", p.Reason),
	)
}
