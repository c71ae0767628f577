package eventbus

import (
	"errors"
	"log/slog"
)

// PolicyUpdatedType is the type string of PolicyUpdated events on the wire
// and the name of their topic (see PolicyUpdatedTopic).
const PolicyUpdatedType = "policy.updated"

// RiskMode is the risk posture of the whole trading system, set by the Meta
// Strategy Controller in a PolicyUpdated. Its values are their own names, as
// in the original system's JSON; any other value is invalid.
type RiskMode string

// The risk modes, from most to least risk taken.
const (
	// RiskModeAggressive takes the most risk.
	RiskModeAggressive RiskMode = "AGGRESSIVE"
	// RiskModeNormal is the usual posture.
	RiskModeNormal RiskMode = "NORMAL"
	// RiskModeDefensive takes the least risk.
	RiskModeDefensive RiskMode = "DEFENSIVE"
)

var riskModes = []RiskMode{RiskModeAggressive, RiskModeNormal, RiskModeDefensive}

// String returns the mode's name, or RiskMode("...") for an unknown value,
// so that an invalid mode stands out in logs.
func (m RiskMode) String() string { return enumString(m, riskModes) }

// PolicyUpdated is the payload of a policy.updated event: the Meta Strategy
// Controller (MSC AI) changed the global trading policy. The Orchestrator,
// the Risk Guard and the Portfolio Balancer act on it.
//
// Its JSON form is the original system's payload: the keys of the struct
// tags, in this order. NewPolicyUpdated applies the original defaults; a
// nil AllowedStrategies encodes as null, which the original never wrote.
// Handlers of one event share its AllowedStrategies and must not modify it.
type PolicyUpdated struct {
	RiskMode            RiskMode `json:"risk_mode"`
	AllowedStrategies   []string `json:"allowed_strategies"`    // ids of the strategies that may trade
	GlobalMinConfidence float64  `json:"global_min_confidence"` // in [0, 1]: weaker signals are not traded
	MaxRiskPerTrade     float64  `json:"max_risk_per_trade"`    // in (0, 1]: the fraction of capital one trade may risk
	MaxPositions        int      `json:"max_positions"`         // open positions at most
	UpdatedBy           string   `json:"updated_by"`            // the producer
}

// NewPolicyUpdated returns the PolicyUpdated the original factory built from
// these arguments: UpdatedBy is "MSC_AI" (set the field to change it) and a
// nil allowedStrategies becomes empty. It does not validate; Publish does.
func NewPolicyUpdated(riskMode RiskMode, allowedStrategies []string, globalMinConfidence, maxRiskPerTrade float64, maxPositions int) PolicyUpdated {
	if allowedStrategies == nil {
		allowedStrategies = []string{}
	}
	return PolicyUpdated{
		RiskMode:            riskMode,
		AllowedStrategies:   allowedStrategies,
		GlobalMinConfidence: globalMinConfidence,
		MaxRiskPerTrade:     maxRiskPerTrade,
		MaxPositions:        maxPositions,
		UpdatedBy:           "MSC_AI",
	}
}

// PolicyUpdatedTopic returns bus's topic of PolicyUpdated events, named
// PolicyUpdatedType, creating it on first use; every call returns the same
// *Topic. It takes the bus's lock, so keep the result rather than calling it
// for every event. It panics if a topic of that name was created with
// another payload type.
func PolicyUpdatedTopic(bus *Bus) *Topic[PolicyUpdated] {
	return MustTopic[PolicyUpdated](bus, PolicyUpdatedType)
}

// EventType returns PolicyUpdatedType, the type string Event's JSON methods
// require of a PolicyUpdated event.
func (PolicyUpdated) EventType() string { return PolicyUpdatedType }

// Validate returns nil if p is a policy the trading system may act on, and
// otherwise an error naming, by JSON key, each field that is wrong:
// RiskMode must be one of the RiskMode constants, no AllowedStrategies entry
// may be empty, GlobalMinConfidence must be in [0, 1], MaxRiskPerTrade in
// (0, 1], MaxPositions not negative, UpdatedBy not empty. Publish calls it.
func (p PolicyUpdated) Validate() error {
	return errors.Join(
		checkEnum("risk_mode", p.RiskMode, riskModes),
		checkNoneEmpty("allowed_strategies", p.AllowedStrategies),
		checkConfidence("global_min_confidence", p.GlobalMinConfidence),
		checkRiskFraction("max_risk_per_trade", p.MaxRiskPerTrade),
		checkNotNegative("max_positions", p.MaxPositions),
		checkNotEmpty("updated_by", p.UpdatedBy),
	)
}

func checkConfidence(field string, f float64) error {
	if err := checkFinite(field, f); err != nil {
		return err
	}
	if f < 0 || f > 1 {
		return fieldErr(field, "%v is outside [0, 1]", f)
	}
	return nil
}

func checkRiskFraction(field string, f float64) error {
	if err := checkFinite(field, f); err != nil {
		return err
	}
	if f <= 0 || f > 1 {
		return fieldErr(field, "%v is outside (0, 1]", f)
	}
	return nil
}

// LogValue implements slog.LogValuer, so that a logged PolicyUpdated reads
// as a short group of its fields.
func (p PolicyUpdated) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("risk_mode", p.RiskMode.String()),
		slog.Any("allowed_strategies", p.AllowedStrategies),
		slog.Float64("global_min_confidence", p.GlobalMinConfidence),
		slog.Float64("max_risk_per_trade", p.MaxRiskPerTrade),
		slog.Int("max_positions", p.MaxPositions),
		slog.String("updated_by", p.UpdatedBy),
	)
}
