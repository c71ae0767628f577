package idgen

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestNextIsUUIDv7WithTheTimestamp(t *testing.T) {
	s := NewRoot().Derive(0)
	const ms = 0x0123456789ab
	id := s.Next(ms)
	if got := binary.BigEndian.Uint64(id[:8]) >> 16; got != ms {
		t.Errorf("timestamp = %x, want %x", got, ms)
	}
	if v := id[6] >> 4; v != 7 {
		t.Errorf("version = %d, want 7", v)
	}
	if v := id[8] >> 6; v != 0b10 {
		t.Errorf("variant = %b, want 10", v)
	}
}

func TestNextIsUniqueAndSortedWithinAMillisecond(t *testing.T) {
	root := NewRoot()
	seen := make(map[[16]byte]bool)
	for n := range uint64(4) {
		s := root.Derive(n)
		s.counter = 0 // sortable unless the counter wraps mid-millisecond
		var prev [16]byte
		for i := range 10000 {
			id := s.Next(42)
			if seen[id] {
				t.Fatalf("source %d: duplicate ID after %d IDs", n, i)
			}
			seen[id] = true
			if i > 0 && bytes.Compare(prev[:], id[:]) >= 0 {
				t.Fatalf("source %d: ID %d does not sort after the previous one", n, i)
			}
			prev = id
		}
	}
}

func TestDerivedSourcesHaveDistinctPrefixes(t *testing.T) {
	root := Root{prefix: 1<<prefixBits - 2} // wraps around the 42-bit space
	a, b, c := root.Derive(0), root.Derive(1), root.Derive(2)
	if a.prefix == b.prefix || b.prefix == c.prefix || a.prefix == c.prefix {
		t.Fatalf("prefixes %x %x %x are not distinct", a.prefix, b.prefix, c.prefix)
	}
}

func BenchmarkNext(b *testing.B) {
	s := NewRoot().Derive(0)
	for b.Loop() {
		_ = s.Next(1)
	}
}
