package eventbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
)

// The JSON form of an Event: the envelope of the original Python system
// (type, timestamp, payload) plus the ID and Metadata it lacked. Publish
// never encodes or decodes; this is for transports, logs and other
// processes, so it favours a predictable wire form over speed.

const (
	// timestampLayout is RFC 3339 in UTC with all nine fractional digits,
	// so that timestamps have one width and sort as strings.
	timestampLayout = "2006-01-02T15:04:05.000000000Z"
	// pythonLayout is what Python's datetime.isoformat writes for the naive
	// UTC times of the original system; time.Parse accepts any fraction of
	// a second after it.
	pythonLayout = "2006-01-02T15:04:05"
)

// wireEvent is the JSON object of an Event, its keys in wire order. P is
// the payload type to encode, or json.RawMessage to decode the envelope
// before the payload.
type wireEvent[P any] struct {
	ID        ID                `json:"id,omitzero"`
	Type      string            `json:"type"`
	Timestamp string            `json:"timestamp"`
	Payload   P                 `json:"payload"`
	Metadata  map[string]string `json:"metadata,omitzero"`
}

// eventTyper is implemented by payload types that belong to one type
// string, such as the six event kinds of the trading system.
type eventTyper interface{ EventType() string }

// eventTypeOf returns the type string of payloads of type T, and false if T
// has no EventType method. For a pointer type it asks the element type, so
// that Event[*PolicyUpdated] is checked like Event[PolicyUpdated]; it never
// calls EventType on a nil pointer.
func eventTypeOf[T any]() (string, bool) {
	if et, ok := any(new(T)).(eventTyper); ok {
		return et.EventType(), true
	}
	if t := reflect.TypeFor[T](); t.Kind() == reflect.Pointer {
		if et, ok := reflect.New(t.Elem()).Interface().(eventTyper); ok {
			return et.EventType(), true
		}
	}
	return "", false
}

// MarshalJSON encodes e as a JSON object with the keys id, type, timestamp,
// payload and metadata, in that order:
//
//   - id is the ID's text form, left out when the ID is zero;
//   - type is e.Topic. For a payload type with an EventType method, such as
//     the six event kinds, an empty Topic is written as its EventType and
//     any other Topic is an error: the document could not be decoded as that
//     payload type again;
//   - timestamp is e.Time in UTC, RFC 3339 with nine fractional digits, e.g.
//     "2025-01-15T10:30:00.123456000Z"; a year outside 0 to 9999 is an error;
//   - payload is e.Payload as encoding/json encodes it;
//   - metadata is left out when e.Metadata is nil (an empty map is written
//     as {}), so an event round-trips exactly.
func (e Event[T]) MarshalJSON() ([]byte, error) {
	typ := e.Topic
	if want, ok := eventTypeOf[T](); ok {
		switch typ {
		case "":
			typ = want
		case want:
		default:
			return nil, fmt.Errorf("eventbus: encoding event: topic %q does not carry %s events", typ, want)
		}
	}
	ts := e.Time.UTC()
	if y := ts.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("eventbus: encoding event: timestamp year %d is outside 0 to 9999", y)
	}
	return json.Marshal(wireEvent[T]{
		ID:        e.ID,
		Type:      typ,
		Timestamp: ts.Format(timestampLayout),
		Payload:   e.Payload,
		Metadata:  e.Metadata,
	})
}

// UnmarshalJSON decodes what MarshalJSON encodes, and the events of the
// original Python system:
//
//   - type is required to equal the EventType of a payload type that has
//     one: decoding another kind's event, or an unknown one, is an error.
//     Other payload types take any type, into e.Topic;
//   - timestamp is required: RFC 3339 with any offset, or, as Python's
//     datetime.isoformat writes the original's times, without a zone, which
//     means UTC (e.g. "2025-01-15T10:30:00.123456"). e.Time is in UTC;
//   - id, payload and metadata may be missing or null: the ID is then zero,
//     the payload T's zero value, the Metadata nil.
//
// Unknown keys are ignored, in the envelope and in the payload, so that
// producers can add fields. UnmarshalJSON checks the shape of the document,
// not the payload's values: Validate does, and PublishEvent calls it. On
// error e is left unchanged.
func (e *Event[T]) UnmarshalJSON(data []byte) error {
	var w wireEvent[json.RawMessage]
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("eventbus: decoding event: %w", err)
	}
	if want, ok := eventTypeOf[T](); ok && w.Type != want {
		return fmt.Errorf("eventbus: decoding event: type %q is not %s", w.Type, want)
	}
	t, err := parseTimestamp(w.Timestamp)
	if err != nil {
		return fmt.Errorf("eventbus: decoding %s event: %w", w.Type, err)
	}
	var payload T
	if len(w.Payload) > 0 {
		if err := json.Unmarshal(w.Payload, &payload); err != nil {
			return fmt.Errorf("eventbus: decoding %s event: payload: %w", w.Type, err)
		}
	}
	*e = Event[T]{ID: w.ID, Topic: w.Type, Time: t, Payload: payload, Metadata: w.Metadata}
	return nil
}

func parseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("no timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		var err2 error
		if t, err2 = time.Parse(pythonLayout, s); err2 != nil {
			return time.Time{}, fmt.Errorf("timestamp %q is neither RFC 3339 nor a Python isoformat time without zone", s)
		}
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		// An offset can push a time past the range MarshalJSON can write.
		return time.Time{}, fmt.Errorf("timestamp %q: year %d in UTC is outside 0 to 9999", s, y)
	}
	return t, nil
}
