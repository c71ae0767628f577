package eventbus

import (
	"errors"
	"log/slog"
)

// OpportunitiesUpdatedType is the type string of OpportunitiesUpdated events
// on the wire and the name of their topic (see OpportunitiesUpdatedTopic).
const OpportunitiesUpdatedType = "opportunities.updated"

// OpportunitiesUpdated is the payload of an opportunities.updated event: the
// Opportunity Ranker ranked the tradable symbols anew. The Strategy Runtime
// Engine acts on it.
//
// Its JSON form is the original system's payload: the keys of the struct
// tags, in this order. NewOpportunitiesUpdated applies the original
// defaults; a nil slice or map encodes as null, which the original never
// wrote. Handlers of one event share its slice and maps and must not modify
// them.
type OpportunitiesUpdated struct {
	TopSymbols    []string           `json:"top_symbols"`    // best first, e.g. "BTCUSDT"
	Scores        map[string]float64 `json:"scores"`         // score by symbol
	Criteria      map[string]any     `json:"criteria"`       // how the ranking was made, any JSON value
	ExcludedCount int                `json:"excluded_count"` // symbols left out of the ranking
}

// NewOpportunitiesUpdated returns the OpportunitiesUpdated the original
// factory built from these arguments: a nil topSymbols or scores becomes
// empty, Criteria is empty and ExcludedCount 0 (set the fields to change
// them). It does not validate; Publish does.
func NewOpportunitiesUpdated(topSymbols []string, scores map[string]float64) OpportunitiesUpdated {
	if topSymbols == nil {
		topSymbols = []string{}
	}
	if scores == nil {
		scores = map[string]float64{}
	}
	return OpportunitiesUpdated{
		TopSymbols: topSymbols,
		Scores:     scores,
		Criteria:   map[string]any{},
	}
}

// OpportunitiesUpdatedTopic returns bus's topic of OpportunitiesUpdated
// events, named OpportunitiesUpdatedType, creating it on first use; every
// call returns the same *Topic. It takes the bus's lock, so keep the result
// rather than calling it for every event. It panics if a topic of that name
// was created with another payload type.
func OpportunitiesUpdatedTopic(bus *Bus) *Topic[OpportunitiesUpdated] {
	return MustTopic[OpportunitiesUpdated](bus, OpportunitiesUpdatedType)
}

// EventType returns OpportunitiesUpdatedType, the type string Event's JSON
// methods require of an OpportunitiesUpdated event.
func (OpportunitiesUpdated) EventType() string { return OpportunitiesUpdatedType }

// Validate returns nil if p is a ranking the trading system may act on, and
// otherwise an error naming, by JSON key, each field that is wrong: no
// TopSymbols entry and no Scores key may be empty, no Scores value may be NaN
// or infinite, nor any number in Criteria at any depth (values nested deeper
// than 64 levels, cyclic ones included, are rejected too), and ExcludedCount
// must not be negative. Publish calls it.
func (p OpportunitiesUpdated) Validate() error {
	return errors.Join(
		checkNoneEmpty("top_symbols", p.TopSymbols),
		checkScores(p.Scores),
		checkMap("criteria", p.Criteria, badValue),
		checkNotNegative("excluded_count", p.ExcludedCount),
	)
}

func checkScores(scores map[string]float64) error {
	if _, ok := scores[""]; ok {
		return fieldErr(`scores[""]`, "empty symbol")
	}
	return checkMap("scores", scores, badFloat)
}

// LogValue implements slog.LogValuer, so that a logged OpportunitiesUpdated
// reads as a short group: the top symbols and the excluded count, without
// the scores and criteria.
func (p OpportunitiesUpdated) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("top_symbols", p.TopSymbols),
		slog.Int("excluded_count", p.ExcludedCount),
	)
}
