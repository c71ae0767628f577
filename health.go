package eventbus

import (
	"errors"
	"log/slog"
)

// HealthStatusChangedType is the type string of HealthStatusChanged events
// on the wire and the name of their topic (see HealthStatusChangedTopic).
const HealthStatusChangedType = "health.status_changed"

// HealthStatus is the health of a component of the trading system. Its
// values are their own names, as in the original system's JSON; any other
// value is invalid.
type HealthStatus string

// The health statuses, from best to worst.
const (
	// HealthStatusHealthy means the component works as intended.
	HealthStatusHealthy HealthStatus = "HEALTHY"
	// HealthStatusDegraded means the component works, but not fully.
	HealthStatusDegraded HealthStatus = "DEGRADED"
	// HealthStatusCritical means the component needs attention now.
	HealthStatusCritical HealthStatus = "CRITICAL"
)

var healthStatuses = []HealthStatus{HealthStatusHealthy, HealthStatusDegraded, HealthStatusCritical}

// String returns the status's name, or HealthStatus("...") for an unknown
// value, so that an invalid status stands out in logs.
func (s HealthStatus) String() string { return enumString(s, healthStatuses) }

// HealthStatusChanged is the payload of a health.status_changed event: the
// System Health Monitor saw a component's health change. The Discord
// Notifier acts on it.
//
// Its JSON form is the original system's payload: the keys of the struct
// tags, in this order. NewHealthStatusChanged applies the original defaults;
// a nil Metrics encodes as null, which the original never wrote. Handlers of
// one event share its Metrics and must not modify it.
type HealthStatusChanged struct {
	OldStatus HealthStatus   `json:"old_status"`
	NewStatus HealthStatus   `json:"new_status"`
	Component string         `json:"component"` // e.g. "DrawdownGuard"
	Reason    string         `json:"reason"`    // for humans
	Metrics   map[string]any `json:"metrics"`   // the readings behind the change, any JSON value
}

// NewHealthStatusChanged returns the HealthStatusChanged the original
// factory built from these arguments, with an empty Metrics (set the field
// to add readings). It does not validate; Publish does.
func NewHealthStatusChanged(oldStatus, newStatus HealthStatus, component, reason string) HealthStatusChanged {
	return HealthStatusChanged{
		OldStatus: oldStatus,
		NewStatus: newStatus,
		Component: component,
		Reason:    reason,
		Metrics:   map[string]any{},
	}
}

// HealthStatusChangedTopic returns bus's topic of HealthStatusChanged
// events, named HealthStatusChangedType, creating it on first use; every
// call returns the same *Topic. It takes the bus's lock, so keep the result
// rather than calling it for every event. It panics if a topic of that name
// was created with another payload type.
func HealthStatusChangedTopic(bus *Bus) *Topic[HealthStatusChanged] {
	return MustTopic[HealthStatusChanged](bus, HealthStatusChangedType)
}

// EventType returns HealthStatusChangedType, the type string Event's JSON
// methods require of a HealthStatusChanged event.
func (HealthStatusChanged) EventType() string { return HealthStatusChangedType }

// Validate returns nil if p is a health change the trading system may act
// on, and otherwise an error naming, by JSON key, each field that is wrong:
// OldStatus and NewStatus must be HealthStatus constants, Component must not
// be empty, and no number in Metrics, at any depth, may be NaN or infinite;
// values nested deeper than 64 levels (cyclic ones included) are rejected
// too. Publish calls it.
func (p HealthStatusChanged) Validate() error {
	return errors.Join(
		checkEnum("old_status", p.OldStatus, healthStatuses),
		checkEnum("new_status", p.NewStatus, healthStatuses),
		checkNotEmpty("component", p.Component),
		checkMap("metrics", p.Metrics, badValue),
	)
}

// LogValue implements slog.LogValuer, so that a logged HealthStatusChanged
// reads as a short group: the component, both statuses and the reason.
func (p HealthStatusChanged) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("component", p.Component),
		slog.String("old_status", p.OldStatus.String()),
		slog.String("new_status", p.NewStatus.String()),
		slog.String("reason", p.Reason),
	)
}
