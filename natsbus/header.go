package natsbus

import (
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
)

// The NATS headers that carry an Envelope besides its Data, which is the
// message body. The event ID travels in jetstream.MsgIDHeader
// ("Nats-Msg-Id") as the canonical UUID text, where the stream uses it for
// de-duplication. Header names are exactly these lowercase strings.
const (
	// HeaderType holds the topic name, e.g. "trade.executed".
	HeaderType = "eventbus-type"
	// HeaderTime holds the publish time in RFC 3339 with nanoseconds, UTC
	// (time.RFC3339Nano).
	HeaderTime = "eventbus-time"
	// HeaderMetadataPrefix starts one header per metadata entry:
	// HeaderMetadataPrefix + escape(key) holds escape(value). escape is
	// RFC 3986 percent-encoding with upper-case hex digits: in a key every
	// byte but the unreserved characters (letters, digits, '-', '.', '_',
	// '~') is encoded; in a value '%', space, control bytes and bytes
	// above 0x7E are. Any key and value, including ones that are not
	// UTF-8, survive the trip, and common ones ("traceparent",
	// "correlation_id") appear verbatim. url.PathUnescape in Go and
	// urllib.parse.unquote_to_bytes in Python decode them.
	HeaderMetadataPrefix = "eventbus-meta-"
)

// encodeHeader builds the headers of env for the stream named stream.
func encodeHeader(env *eventbus.Envelope, stream string) nats.Header {
	n := 4 + len(env.Metadata)
	h := make(nats.Header, n)
	vals := make([]string, n) // one allocation for every header's value slice
	put := func(k, v string) {
		vals[0] = v
		h[k] = vals[:1:1]
		vals = vals[1:]
	}
	put(jetstream.MsgIDHeader, env.ID.String())
	put(jetstream.ExpectedStreamHeader, stream)
	put(HeaderType, env.Topic)
	put(HeaderTime, env.Time.UTC().Format(time.RFC3339Nano))
	for k, v := range env.Metadata {
		put(HeaderMetadataPrefix+escape(k, isKeyByte), escape(v, isValueByte))
	}
	return h
}

// decodeEnvelope reads an envelope from a stored message. It is lenient,
// because anything may publish on the stream's subjects: without
// HeaderType the topic is the subject after the prefix; without a valid
// HeaderTime the time is when the stream stored the message; an ID that is
// not a UUID gives the zero ID; a metadata entry that is not valid
// percent-encoding is kept as it came. A valid HeaderTime is also, once in
// UTC, within the years 0 to 9999: an offset can carry a time RFC 3339
// allows past them, and the event's JSON (a dead letter's too) could not
// be written. A metadata key that two headers spell differently takes the
// value of the one spelt as encodeHeader spells it, else of the least
// header name, so that a message always decodes the same way.
func decodeEnvelope(msg jetstream.Msg, prefix string, stored time.Time) eventbus.Envelope {
	h := msg.Headers()
	env := eventbus.Envelope{Data: msg.Data()}
	env.ID, _ = eventbus.ParseID(h.Get(jetstream.MsgIDHeader))
	env.Topic = h.Get(HeaderType)
	if env.Topic == "" {
		env.Topic = strings.TrimPrefix(msg.Subject(), prefix)
	}
	t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderTime))
	if y := t.UTC().Year(); err != nil || y < 0 || y > 9999 {
		t = stored
	}
	env.Time = t.UTC()
	for k, vs := range h {
		rest, ok := strings.CutPrefix(k, HeaderMetadataPrefix)
		if !ok || len(vs) == 0 {
			continue
		}
		if env.Metadata == nil {
			env.Metadata = make(map[string]string)
		}
		key := unescape(rest)
		if _, dup := env.Metadata[key]; dup {
			k = metadataHeader(h, key)
			vs = h[k]
		}
		env.Metadata[key] = unescape(vs[0])
	}
	return env
}

// metadataHeader picks, among the headers of h that decode to the metadata
// key, the one whose value the key takes whatever the order of h: the one
// spelt as encodeHeader spells it, else the least name.
func metadataHeader(h nats.Header, key string) string {
	canonical := HeaderMetadataPrefix + escape(key, isKeyByte)
	if len(h[canonical]) > 0 {
		return canonical
	}
	least := ""
	for k, vs := range h {
		rest, ok := strings.CutPrefix(k, HeaderMetadataPrefix)
		if ok && len(vs) > 0 && unescape(rest) == key && (least == "" || k < least) {
			least = k
		}
	}
	return least
}

func isKeyByte(c byte) bool {
	return isNameByte(c) || c == '.' || c == '~'
}

func isValueByte(c byte) bool {
	return c > ' ' && c < 0x7f && c != '%'
}

// escape percent-encodes every byte of s for which keep is false.
func escape(s string, keep func(byte) bool) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !keep(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// unescape reverses escape; s is returned unchanged if it is not valid
// percent-encoding.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}
