package natsbus

import (
	"testing"
	"unicode/utf8"

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
