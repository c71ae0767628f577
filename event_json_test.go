package eventbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the golden event files in testdata from the encoder")

var (
	goldenID   = mustParseID("01946a2b-3c4d-7e5f-8a6b-1c2d3e4f5a6b")
	goldenTime = time.Date(2025, 1, 15, 10, 30, 0, 123456789, time.UTC)
	pythonTime = time.Date(2025, 1, 15, 10, 30, 0, 123456000, time.UTC)
)

func mustParseID(s string) eventbus.ID {
	id, err := eventbus.ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// goldenEvent is one event of the six kinds with the checks of its type.
type goldenEvent struct {
	name      string // the golden file's stem, e.g. "policy_updated"
	golden    func(t *testing.T)
	roundTrip func(t *testing.T)
}

func newGoldenEvent[T any](name string, ev eventbus.Event[T]) goldenEvent {
	return goldenEvent{name: name, golden: checkGolden(name, ev), roundTrip: roundTrip(ev)}
}

// goldenEvents are one event of each kind, as the golden files hold them.
// Some have metadata, one an empty map and some none, to pin down all three.
func goldenEvents() []goldenEvent {
	return []goldenEvent{
		newGoldenEvent("policy_updated", eventbus.Event[eventbus.PolicyUpdated]{
			ID: goldenID, Topic: "policy.updated", Time: goldenTime, Payload: samplePolicy(),
			Metadata: map[string]string{"correlation_id": "c0ffee", "source": "msc-ai"},
		}),
		newGoldenEvent("strategy_promoted", eventbus.Event[eventbus.StrategyPromoted]{
			ID: goldenID, Topic: "strategy.promoted", Time: goldenTime, Payload: sampleStrategy(),
		}),
		newGoldenEvent("model_promoted", eventbus.Event[eventbus.ModelPromoted]{
			ID: goldenID, Topic: "model.promoted", Time: goldenTime, Payload: sampleModel(),
			Metadata: map[string]string{},
		}),
		newGoldenEvent("health_status_changed", eventbus.Event[eventbus.HealthStatusChanged]{
			ID: goldenID, Topic: "health.status_changed", Time: goldenTime, Payload: sampleHealth(),
			Metadata: map[string]string{"source": "health-monitor"},
		}),
		newGoldenEvent("opportunities_updated", eventbus.Event[eventbus.OpportunitiesUpdated]{
			ID: goldenID, Topic: "opportunities.updated", Time: goldenTime, Payload: sampleOpportunities(),
		}),
		newGoldenEvent("trade_executed", eventbus.Event[eventbus.TradeExecuted]{
			ID: goldenID, Topic: "trade.executed", Time: goldenTime, Payload: sampleTrade(),
			Metadata: map[string]string{"correlation_id": "ORD_12345"},
		}),
	}
}

func TestEventJSONGolden(t *testing.T) {
	for _, tt := range goldenEvents() {
		t.Run("a "+tt.name+" event encodes as its golden file and decodes back", tt.golden)
	}
}

func checkGolden[T any](name string, ev eventbus.Event[T]) func(*testing.T) {
	return func(t *testing.T) {
		path := filepath.Join("testdata", name+".json")
		got, err := json.MarshalIndent(ev, "", "  ")
		require.NoError(t, err)
		got = append(got, '\n')
		if *updateGolden {
			require.NoError(t, os.WriteFile(path, got, 0o644))
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err)
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("json.MarshalIndent differs from %s (-want +got):\n%s", path, diff)
		}

		var back eventbus.Event[T]
		require.NoError(t, json.Unmarshal(want, &back))
		if diff := cmp.Diff(ev, back); diff != "" {
			t.Errorf("decoding %s (-want +got):\n%s", path, diff)
		}
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	trade := sampleTrade()
	trade.PnL = new(-12.75)
	nested := sampleHealth()
	nested.Metrics["window"] = map[string]any{"dd": []any{-1.5, -6.5}, "breached": true, "note": nil}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a trade with model and pnl keeps both", roundTrip(eventbus.Event[eventbus.TradeExecuted]{
			Topic: "trade.executed", Time: goldenTime, Payload: trade,
		})},
		{"a zero event stays zero", roundTrip(eventbus.Event[eventbus.PolicyUpdated]{Topic: "policy.updated"})},
		{"nil slices and maps stay nil", roundTrip(eventbus.Event[eventbus.OpportunitiesUpdated]{
			ID: goldenID, Topic: "opportunities.updated", Time: goldenTime,
			Payload: eventbus.OpportunitiesUpdated{ExcludedCount: 3},
		})},
		{"nested metrics keep their shape", roundTrip(eventbus.Event[eventbus.HealthStatusChanged]{
			ID: goldenID, Topic: "health.status_changed", Time: goldenTime, Payload: nested,
		})},
		{"a pointer payload keeps its kind", roundTrip(eventbus.Event[*eventbus.ModelPromoted]{
			ID: goldenID, Topic: "model.promoted", Time: goldenTime, Payload: new(sampleModel()),
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
	for _, tt := range goldenEvents() {
		t.Run("the golden "+tt.name+" event survives a round trip", tt.roundTrip)
	}
}

func roundTrip[T any](ev eventbus.Event[T]) func(*testing.T) {
	return func(t *testing.T) {
		data, err := json.Marshal(ev)
		require.NoError(t, err)
		var back eventbus.Event[T]
		require.NoError(t, json.Unmarshal(data, &back))
		if diff := cmp.Diff(ev, back); diff != "" {
			t.Errorf("round trip through %s (-want +got):\n%s", data, diff)
		}
	}
}

// pythonEvent is a document the original Python system wrote, and the event
// it must decode to.
type pythonEvent struct {
	name string // the file's stem in testdata/python
	run  func(t *testing.T)
}

func newPythonEvent[T interface{ Validate() error }](name string, want eventbus.Event[T]) pythonEvent {
	return pythonEvent{name, func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join("testdata", "python", name+".json"))
		require.NoError(t, err)
		var got eventbus.Event[T]
		require.NoError(t, json.Unmarshal(data, &got))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("decoding %s.json (-want +got):\n%s", name, diff)
		}
		assert.NoError(t, got.Payload.Validate())
	}}
}

func TestEventJSONDecodesPythonDocuments(t *testing.T) {
	tests := []pythonEvent{
		newPythonEvent("policy_updated", eventbus.Event[eventbus.PolicyUpdated]{
			Topic: "policy.updated", Time: pythonTime, Payload: samplePolicy(),
		}),
		newPythonEvent("strategy_promoted", eventbus.Event[eventbus.StrategyPromoted]{
			Topic: "strategy.promoted", Time: pythonTime, Payload: sampleStrategy(),
		}),
		newPythonEvent("model_promoted", eventbus.Event[eventbus.ModelPromoted]{
			Topic: "model.promoted", Time: pythonTime, Payload: sampleModel(),
		}),
		newPythonEvent("health_status_changed", eventbus.Event[eventbus.HealthStatusChanged]{
			Topic: "health.status_changed", Time: pythonTime, Payload: sampleHealth(),
		}),
		newPythonEvent("opportunities_updated", eventbus.Event[eventbus.OpportunitiesUpdated]{
			Topic: "opportunities.updated", Time: pythonTime, Payload: sampleOpportunities(),
		}),
		newPythonEvent("trade_executed", eventbus.Event[eventbus.TradeExecuted]{
			Topic: "trade.executed", Time: pythonTime, Payload: sampleTrade(),
		}),
	}
	for _, tt := range tests {
		t.Run("a "+tt.name+" event written by the Python system decodes", tt.run)
	}
}

// A decoded Python event can be published as it is: it keeps its time and
// gets an ID.
func TestPythonEventPublishes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "python", "policy_updated.json"))
	require.NoError(t, err)
	var ev eventbus.Event[eventbus.PolicyUpdated]
	require.NoError(t, json.Unmarshal(data, &ev))

	bus, err := eventbus.New()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, bus.Close(context.Background())) })
	topic := eventbus.PolicyUpdatedTopic(bus)
	got := make(chan eventbus.Event[eventbus.PolicyUpdated], 1)
	_, err = topic.Subscribe(func(_ context.Context, ev eventbus.Event[eventbus.PolicyUpdated]) error {
		got <- ev
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	require.NoError(t, topic.PublishEvent(context.Background(), ev))
	delivered := <-got
	assert.Equal(t, pythonTime, delivered.Time)
	assert.False(t, delivered.ID.IsZero(), "the delivered event has an ID")
	if diff := cmp.Diff(ev.Payload, delivered.Payload); diff != "" {
		t.Errorf("payload (-sent +delivered):\n%s", diff)
	}
}

// The payload keys, in order, are the original system's.
func TestKindJSONKeys(t *testing.T) {
	tests := []struct {
		name    string
		payload any
		want    []string
	}{
		{"a policy update has the original keys", samplePolicy(),
			[]string{"risk_mode", "allowed_strategies", "global_min_confidence", "max_risk_per_trade", "max_positions", "updated_by"}},
		{"a strategy promotion has the original keys", sampleStrategy(),
			[]string{"strategy_id", "from_stage", "to_stage", "reason", "metrics"}},
		{"a model promotion has the original keys", sampleModel(),
			[]string{"model_name", "old_version", "new_version", "metrics", "shadow_performance"}},
		{"a health change has the original keys", sampleHealth(),
			[]string{"old_status", "new_status", "component", "reason", "metrics"}},
		{"an opportunities update has the original keys", sampleOpportunities(),
			[]string{"top_symbols", "scores", "criteria", "excluded_count"}},
		{"a trade has the original keys, model and pnl even when null",
			eventbus.NewTradeExecuted("ORD_1", "ETHUSDT", eventbus.SideSell, 1, 2500, "s1"),
			[]string{"order_id", "symbol", "side", "size", "price", "strategy_id", "model", "pnl"}},
		{"an event has the envelope keys", eventbus.Event[int]{ID: goldenID, Metadata: map[string]string{}},
			[]string{"id", "type", "timestamp", "payload", "metadata"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.payload)
			require.NoError(t, err)
			assert.Equal(t, tt.want, topLevelKeys(t, data))
		})
	}
}

// topLevelKeys returns the keys of a JSON object in document order.
func topLevelKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}

func TestEventMarshalJSON(t *testing.T) {
	plus2 := time.FixedZone("+02:00", 2*60*60)
	tests := []struct {
		name string
		ev   any
		want string // the JSON, or the error
	}{
		{"a zero ID and nil metadata are left out",
			eventbus.Event[int]{Topic: "t", Time: goldenTime, Payload: 1},
			`{"type":"t","timestamp":"2025-01-15T10:30:00.123456789Z","payload":1}`},
		{"an ID and empty metadata are written",
			eventbus.Event[int]{ID: goldenID, Topic: "t", Time: goldenTime, Payload: 1, Metadata: map[string]string{}},
			`{"id":"01946a2b-3c4d-7e5f-8a6b-1c2d3e4f5a6b","type":"t","timestamp":"2025-01-15T10:30:00.123456789Z","payload":1,"metadata":{}}`},
		{"the timestamp is in UTC with nine fractional digits",
			eventbus.Event[int]{Topic: "t", Time: time.Date(2025, 1, 15, 12, 30, 0, 0, plus2)},
			`{"type":"t","timestamp":"2025-01-15T10:30:00.000000000Z","payload":0}`},
		{"a zero time is written as year 1",
			eventbus.Event[int]{Topic: "t"},
			`{"type":"t","timestamp":"0001-01-01T00:00:00.000000000Z","payload":0}`},
		{"a kind with no topic is written with its type",
			eventbus.Event[eventbus.TradeExecuted]{Time: goldenTime},
			`{"type":"trade.executed","timestamp":"2025-01-15T10:30:00.123456789Z","payload":{"order_id":"","symbol":"","side":"","size":0,"price":0,"strategy_id":"","model":null,"pnl":null}}`},
		{"a kind on another topic is refused",
			eventbus.Event[eventbus.TradeExecuted]{Topic: "trade.simulated"},
			`json: error calling MarshalJSON for type eventbus.Event[github.com/quantumtrader/eventbus.TradeExecuted]: eventbus: encoding event: topic "trade.simulated" does not carry trade.executed events`},
		{"a time past year 9999 is refused",
			eventbus.Event[int]{Topic: "t", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			"json: error calling MarshalJSON for type eventbus.Event[int]: eventbus: encoding event: timestamp year 10000 is outside 0 to 9999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.ev)
			if err != nil {
				assert.EqualError(t, err, tt.want)
				return
			}
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestEventUnmarshalJSONTimestamps(t *testing.T) {
	tests := []struct {
		name      string
		timestamp string
		want      time.Time
	}{
		{"RFC 3339 in UTC", `2025-01-15T10:30:00.123456789Z`, goldenTime},
		{"RFC 3339 with an offset, converted to UTC", `2025-01-15T12:30:00.123456789+02:00`, goldenTime},
		{"RFC 3339 without a fraction", `2025-01-15T10:30:00Z`, time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)},
		{"Python's isoformat without zone, as UTC", `2025-01-15T10:30:00.123456`, pythonTime},
		{"Python's isoformat of a whole second", `2025-01-15T10:30:00`, time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)},
		{"Python's isoformat of an aware UTC time", `2025-01-15T10:30:00.123456+00:00`, pythonTime},
	}
	for _, tt := range tests {
		t.Run("decodes "+tt.name, func(t *testing.T) {
			var ev eventbus.Event[int]
			require.NoError(t, json.Unmarshal([]byte(`{"type":"t","timestamp":"`+tt.timestamp+`","payload":1}`), &ev))
			assert.Equal(t, tt.want, ev.Time) // ==, so also in UTC
		})
	}
}

func TestEventUnmarshalJSONErrors(t *testing.T) {
	const ts = `"timestamp":"2025-01-15T10:30:00Z"`
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"another kind's event is refused",
			`{"type":"strategy.promoted",` + ts + `,"payload":{}}`,
			`eventbus: decoding event: type "strategy.promoted" is not policy.updated`},
		{"an unknown type is refused",
			`{"type":"policy.changed",` + ts + `,"payload":{}}`,
			`eventbus: decoding event: type "policy.changed" is not policy.updated`},
		{"a missing type is refused",
			`{` + ts + `,"payload":{}}`,
			`eventbus: decoding event: type "" is not policy.updated`},
		{"a missing timestamp is refused",
			`{"type":"policy.updated","payload":{}}`,
			`eventbus: decoding policy.updated event: no timestamp`},
		{"a timestamp of another form is refused",
			`{"type":"policy.updated","timestamp":"15/01/2025 10:30","payload":{}}`,
			`eventbus: decoding policy.updated event: timestamp "15/01/2025 10:30" is neither RFC 3339 nor a Python isoformat time without zone`},
		{"a timestamp before year 0 in UTC is refused",
			`{"type":"policy.updated","timestamp":"0000-01-01T00:00:00+01:00","payload":{}}`,
			`eventbus: decoding policy.updated event: timestamp "0000-01-01T00:00:00+01:00": year -1 in UTC is outside 0 to 9999`},
		{"a malformed ID is refused",
			`{"id":"ORD_12345","type":"policy.updated",` + ts + `,"payload":{}}`,
			`eventbus: decoding event: eventbus: invalid event ID "ORD_12345": want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`},
		{"a payload field of the wrong JSON type is refused",
			`{"type":"policy.updated",` + ts + `,"payload":{"max_positions":"three"}}`,
			`eventbus: decoding policy.updated event: payload: json: cannot unmarshal string into Go struct field PolicyUpdated.max_positions of type int`},
		{"a document that is not an object is refused",
			`["policy.updated"]`,
			`eventbus: decoding event: json: cannot unmarshal array into Go value of type eventbus.wireEvent[encoding/json.RawMessage]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := eventbus.Event[eventbus.PolicyUpdated]{Topic: "before", Payload: samplePolicy()}
			before := ev
			err := json.Unmarshal([]byte(tt.doc), &ev)
			assert.EqualError(t, err, tt.want)
			if diff := cmp.Diff(before, ev); diff != "" {
				t.Errorf("a failed decode changed the event (-before +after):\n%s", diff)
			}
		})
	}
}

func TestEventUnmarshalJSONAcceptsWhatTheOriginalLeavesOut(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want eventbus.Event[eventbus.TradeExecuted]
	}{
		{"null id, payload and metadata are zero",
			`{"id":null,"type":"trade.executed","timestamp":"2025-01-15T10:30:00Z","payload":null,"metadata":null}`,
			eventbus.Event[eventbus.TradeExecuted]{Topic: "trade.executed", Time: time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC)}},
		{"unknown keys are ignored",
			`{"type":"trade.executed","timestamp":"2025-01-15T10:30:00Z","source":"py","payload":{"order_id":"O1","fee":0.1}}`,
			eventbus.Event[eventbus.TradeExecuted]{Topic: "trade.executed", Time: time.Date(2025, 1, 15, 10, 30, 0, 0, time.UTC),
				Payload: eventbus.TradeExecuted{OrderID: "O1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got eventbus.Event[eventbus.TradeExecuted]
			require.NoError(t, json.Unmarshal([]byte(tt.doc), &got))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decoding (-want +got):\n%s", diff)
			}
		})
	}
}

// Event[*Kind] is checked like Event[Kind], and a null payload leaves it nil
// rather than making the type check dereference nil.
func TestEventUnmarshalJSONPointerPayload(t *testing.T) {
	var ev eventbus.Event[*eventbus.HealthStatusChanged]
	err := json.Unmarshal([]byte(`{"type":"trade.executed","timestamp":"2025-01-15T10:30:00Z","payload":null}`), &ev)
	assert.EqualError(t, err, `eventbus: decoding event: type "trade.executed" is not health.status_changed`)

	require.NoError(t, json.Unmarshal([]byte(`{"type":"health.status_changed","timestamp":"2025-01-15T10:30:00Z","payload":null}`), &ev))
	assert.Nil(t, ev.Payload)
}

// Publish must not depend on JSON: a payload that cannot be encoded is
// still delivered.
func TestPublishDoesNotEncode(t *testing.T) {
	bus, err := eventbus.New()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, bus.Close(context.Background())) })
	topic := eventbus.MustTopic[unencodable](bus, "test.unencodable")
	var got int
	_, err = topic.Subscribe(func(_ context.Context, ev eventbus.Event[unencodable]) error {
		got = ev.Payload.n
		return nil
	}, eventbus.Sync())
	require.NoError(t, err)

	require.NoError(t, topic.PublishWait(context.Background(), unencodable{n: 7}))
	assert.Equal(t, 7, got)
	_, err = json.Marshal(eventbus.Event[unencodable]{})
	assert.Error(t, err, "the payload really cannot be encoded")
}

type unencodable struct{ n int }

func (unencodable) MarshalJSON() ([]byte, error) { return nil, errUnencodable }

var errUnencodable = errors.New("unencodable")

func FuzzDecodeEventPolicyUpdated(f *testing.F)    { fuzzDecodeEvent[eventbus.PolicyUpdated](f) }
func FuzzDecodeEventStrategyPromoted(f *testing.F) { fuzzDecodeEvent[eventbus.StrategyPromoted](f) }
func FuzzDecodeEventModelPromoted(f *testing.F)    { fuzzDecodeEvent[eventbus.ModelPromoted](f) }
func FuzzDecodeEventHealthStatusChanged(f *testing.F) {
	fuzzDecodeEvent[eventbus.HealthStatusChanged](f)
}
func FuzzDecodeEventOpportunitiesUpdated(f *testing.F) {
	fuzzDecodeEvent[eventbus.OpportunitiesUpdated](f)
}
func FuzzDecodeEventTradeExecuted(f *testing.F) { fuzzDecodeEvent[eventbus.TradeExecuted](f) }

// fuzzDecodeEvent checks that no input makes decoding an Event[T] panic,
// and that whatever decodes encodes to a document that decodes to an equal
// event and encodes to the same bytes again. The seed corpus is in
// testdata/fuzz/<FuzzName>.
func fuzzDecodeEvent[T any](f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev eventbus.Event[T]
		if err := json.Unmarshal(data, &ev); err != nil {
			return
		}
		out, err := json.Marshal(ev)
		require.NoError(t, err, "encoding what decoded")
		var back eventbus.Event[T]
		require.NoError(t, json.Unmarshal(out, &back), "decoding %s", out)
		if diff := cmp.Diff(ev, back); diff != "" {
			t.Fatalf("round trip through %s (-decoded +again):\n%s", out, diff)
		}
		again, err := json.Marshal(back)
		require.NoError(t, err)
		assert.Equal(t, string(out), string(again), "a second encoding differs")
	})
}
