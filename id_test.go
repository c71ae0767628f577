package eventbus_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

func TestIDText(t *testing.T) {
	const text = "0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b"
	id, err := eventbus.ParseID(text)
	require.NoError(t, err)
	assert.Equal(t, text, id.String())
	assert.False(t, id.IsZero())
	assert.True(t, eventbus.ID{}.IsZero())

	upper, err := eventbus.ParseID("0190A5B2-7C3D-7E4F-8A1B-2C3D4E5F6A7B")
	require.NoError(t, err)
	assert.Equal(t, id, upper, "upper case parses too")

	b, err := json.Marshal(map[string]eventbus.ID{"id": id})
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"`+text+`"}`, string(b))
	var back map[string]eventbus.ID
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, id, back["id"])

	assert.Equal(t, time.UnixMilli(0x0190a5b27c3d).UTC(), id.Time())
}

func TestParseIDRejectsMalformedText(t *testing.T) {
	for _, s := range []string{
		"",
		"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7",   // short
		"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b0", // long
		"0190a5b2x7c3d-7e4f-8a1b-2c3d4e5f6a7b",  // bad separator
		"0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7g",  // not hex
		"0190a5b27c3d7e4f8a1b2c3d4e5f6a7b",      // no dashes
	} {
		t.Run(s, func(t *testing.T) {
			_, err := eventbus.ParseID(s)
			assert.Error(t, err)
			// A non-zero ID: a zero one could not tell a failed
			// UnmarshalText that left it alone from one that zeroed it.
			const was = "0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7b"
			id, err := eventbus.ParseID(was)
			require.NoError(t, err)
			assert.Error(t, id.UnmarshalText([]byte(s)))
			assert.Equal(t, was, id.String(), "a failed UnmarshalText leaves the ID alone")
		})
	}
}

func TestIDsOfTwoBusesDiffer(t *testing.T) {
	// The same topic on two buses, published to in the same millisecond
	// with the same counter would collide unless the random prefixes differ.
	seen := make(map[eventbus.ID]bool)
	for range 50 {
		bus := newBus(t)
		topic := eventbus.MustTopic[int](bus, "t")
		require.NoError(t, topic.Publish(t.Context(), 1))
		ev, _ := topic.Latest()
		require.False(t, seen[ev.ID])
		seen[ev.ID] = true
	}
}
