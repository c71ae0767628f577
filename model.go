package eventbus

import (
	"errors"
	"log/slog"
)

// ModelPromotedType is the type string of ModelPromoted events on the wire
// and the name of their topic (see ModelPromotedTopic).
const ModelPromotedType = "model.promoted"

// ModelPromoted is the payload of a model.promoted event: the Continuous
// Learning Manager put a new version of a prediction model into service. The
// Ensemble Manager acts on it.
//
// Its JSON form is the original system's payload: the keys of the struct
// tags, in this order. NewModelPromoted applies the original defaults; a nil
// map encodes as null, which the original never wrote. Handlers of one event
// share its maps and must not modify them.
type ModelPromoted struct {
	ModelName         string             `json:"model_name"`         // e.g. "XGBoost", "LightGBM", "NHiTS", "PatchTST"
	OldVersion        string             `json:"old_version"`        // the version replaced; empty for a model's first
	NewVersion        string             `json:"new_version"`        // the version now in service
	Metrics           map[string]float64 `json:"metrics"`            // the new version's evaluation
	ShadowPerformance map[string]float64 `json:"shadow_performance"` // its figures while it ran in shadow
}

// NewModelPromoted returns the ModelPromoted the original factory built from
// these arguments: a nil metrics becomes empty, and ShadowPerformance is
// empty (set the field to add figures). It does not validate; Publish does.
func NewModelPromoted(modelName, oldVersion, newVersion string, metrics map[string]float64) ModelPromoted {
	if metrics == nil {
		metrics = map[string]float64{}
	}
	return ModelPromoted{
		ModelName:         modelName,
		OldVersion:        oldVersion,
		NewVersion:        newVersion,
		Metrics:           metrics,
		ShadowPerformance: map[string]float64{},
	}
}

// ModelPromotedTopic returns bus's topic of ModelPromoted events, named
// ModelPromotedType, creating it on first use; every call returns the same
// *Topic. It takes the bus's lock, so keep the result rather than calling it
// for every event. It panics if a topic of that name was created with
// another payload type.
func ModelPromotedTopic(bus *Bus) *Topic[ModelPromoted] {
	return MustTopic[ModelPromoted](bus, ModelPromotedType)
}

// EventType returns ModelPromotedType, the type string Event's JSON methods
// require of a ModelPromoted event.
func (ModelPromoted) EventType() string { return ModelPromotedType }

// Validate returns nil if p is a promotion the trading system may act on,
// and otherwise an error naming, by JSON key, each field that is wrong:
// ModelName and NewVersion must not be empty, NewVersion must differ from
// OldVersion, and no value of Metrics or ShadowPerformance may be NaN or
// infinite. Publish calls it.
func (p ModelPromoted) Validate() error {
	return errors.Join(
		checkNotEmpty("model_name", p.ModelName),
		checkNotEmpty("new_version", p.NewVersion),
		checkVersionChange(p.OldVersion, p.NewVersion),
		checkMap("metrics", p.Metrics, badFloat),
		checkMap("shadow_performance", p.ShadowPerformance, badFloat),
	)
}

func checkVersionChange(from, to string) error {
	if from == to && to != "" {
		return fieldErr("new_version", "%q is also old_version: a promotion changes the version", to)
	}
	return nil
}

// LogValue implements slog.LogValuer, so that a logged ModelPromoted reads
// as a short group: the model and both versions.
func (p ModelPromoted) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("model_name", p.ModelName),
		slog.String("old_version", p.OldVersion),
		slog.String("new_version", p.NewVersion),
	)
}
