package eventbus

import (
	"encoding/hex"
	"fmt"
	"time"
)

// ID identifies one event: a UUIDv7 stored as a 16-byte value, so it is
// comparable, usable as a map key, and costs no allocation. IDs made by a Bus
// sort by publish time to the millisecond, and by publish order within a
// millisecond on one topic. The zero ID means "not set": PublishEvent fills it in.
type ID [16]byte

// ParseID parses the canonical text form of a UUID,
// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, in either case.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, fmt.Errorf("eventbus: invalid event ID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i--
			continue
		}
		if _, err := hex.Decode(id[j:j+1], []byte(s[i:i+2])); err != nil {
			return ID{}, fmt.Errorf("eventbus: invalid event ID %q: %w", s, err)
		}
		j++
	}
	return id, nil
}

// String returns the canonical lowercase text form of the UUID.
func (id ID) String() string {
	var b [36]byte
	id.encode(&b)
	return string(b[:])
}

func (id ID) encode(b *[36]byte) {
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
}

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// Time returns the millisecond timestamp a UUIDv7 carries, in UTC.
func (id ID) Time() time.Time {
	ms := int64(id[0])<<40 | int64(id[1])<<32 | int64(id[2])<<24 | int64(id[3])<<16 | int64(id[4])<<8 | int64(id[5])
	return time.UnixMilli(ms).UTC()
}

// MarshalText implements encoding.TextMarshaler with the canonical form.
func (id ID) MarshalText() ([]byte, error) {
	var b [36]byte
	id.encode(&b)
	return b[:], nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts what ParseID accepts.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
