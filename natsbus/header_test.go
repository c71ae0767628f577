package natsbus

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
)

func TestEscape(t *testing.T) {
	tests := []struct{ key, value, wantKey, wantValue string }{
		{"traceparent", "00-4bf9-01", "traceparent", "00-4bf9-01"},
		{"correlation_id", "c-42", "correlation_id", "c-42"},
		{"Mixed.Case~", "a+b=c;d,e/f", "Mixed.Case~", "a+b=c;d,e/f"},
		{"with space", " x ", "with%20space", "%20x%20"},
		{"colon:key", "a: b", "colon%3Akey", "a:%20b"},
		{"percent%", "100%", "percent%25", "100%25"},
		{"line\r\n", "line\r\n", "line%0D%0A", "line%0D%0A"},
		{"ключ", "✓", "%D0%BA%D0%BB%D1%8E%D1%87", "%E2%9C%93"},
		{"", "", "", ""},
	}
	for _, tt := range tests {
		gotKey, gotValue := escape(tt.key, isKeyByte), escape(tt.value, isValueByte)
		assert.Equal(t, tt.wantKey, gotKey, "key %q", tt.key)
		assert.Equal(t, tt.wantValue, gotValue, "value %q", tt.value)
		assert.Equal(t, tt.key, unescape(gotKey))
		assert.Equal(t, tt.value, unescape(gotValue))
	}
	assert.Equal(t, "100%", unescape("100%"), "not percent-encoding: kept as it came")
}

// FuzzEscape checks that any metadata key and value survive the trip
// through a header, and that what goes on the wire is a legal header key
// and value.
func FuzzEscape(f *testing.F) {
	f.Add("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("with space", " leading and trailing ")
	f.Add("colon:key", "line\r\nbreak")
	f.Add("%41", "%zz")
	f.Add("\xff\x00", "\xfe")
	f.Fuzz(func(t *testing.T, key, value string) {
		k, v := escape(key, isKeyByte), escape(value, isValueByte)
		for i := 0; i < len(k); i++ {
			if !isKeyByte(k[i]) && k[i] != '%' {
				t.Fatalf("escaped key %q has byte %q", k, k[i])
			}
		}
		for i := 0; i < len(v); i++ {
			if !isValueByte(v[i]) && v[i] != '%' {
				t.Fatalf("escaped value %q has byte %q", v, v[i])
			}
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			t.Fatalf("escaped %q %q is not UTF-8", k, v)
		}
		if got := unescape(k); got != key {
			t.Fatalf("key %q came back as %q", key, got)
		}
		if got := unescape(v); got != value {
			t.Fatalf("value %q came back as %q", value, got)
		}
	})
}

// storedMsg is a message as a receiver pulls it, with only what
// decodeEnvelope reads.
type storedMsg struct {
	jetstream.Msg // nil: calling anything else panics
	header        nats.Header
	subject       string
	data          []byte
}

func (m *storedMsg) Headers() nats.Header { return m.header }
func (m *storedMsg) Subject() string      { return m.subject }
func (m *storedMsg) Data() []byte         { return m.data }

// FuzzDecodeEnvelope feeds decodeEnvelope messages as any publisher on the
// stream's subjects could write them: a header block in the wire format
// (which the client parses with nats.DecodeHeadersMsg, passing the message
// on without headers if it cannot), a subject and a body. Whatever comes
// in, the envelope must decode the same way every time, carry a time that
// JSON can encode (dead letters and Event[T] do), and come back unchanged
// from encodeHeader and decodeEnvelope, without falling back on the stored
// time. The seed corpus is in testdata/fuzz/FuzzDecodeEnvelope.
func FuzzDecodeEnvelope(f *testing.F) {
	const prefix = "events."
	f.Fuzz(func(t *testing.T, header []byte, subject string, data []byte, stored int64) {
		h, err := nats.DecodeHeadersMsg(header)
		if err != nil {
			h = nil
		}
		msg := &storedMsg{header: h, subject: subject, data: data}
		storedAt := time.Unix(0, stored)
		env := decodeEnvelope(msg, prefix, storedAt)
		// Map order differs from one range to the next, though not
		// evenly; 32 decodes make a difference all but certain to show.
		for range 32 {
			if diff := cmp.Diff(env, decodeEnvelope(msg, prefix, storedAt)); diff != "" {
				t.Fatalf("the same message decodes differently (-first +again):\n%s", diff)
			}
		}
		if env.Time.Location() != time.UTC {
			t.Fatalf("time %v is not in UTC", env.Time)
		}
		if _, err := env.Time.MarshalJSON(); err != nil {
			t.Fatalf("time of the envelope: %v", err)
		}
		again := &storedMsg{header: encodeHeader(&env, "EVENTS"), subject: subject, data: data}
		back := decodeEnvelope(again, prefix, storedAt.Add(time.Hour))
		if diff := cmp.Diff(env, back); diff != "" {
			t.Fatalf("the envelope changes when encoded and decoded again (-decoded +again):\n%s", diff)
		}
	})
}
