// Package idgen generates UUIDv7 values without locks or allocation.
//
// Layout of the 128 bits, most significant first (RFC 9562, version 7):
//
//	48 bits  Unix time in milliseconds
//	 4 bits  version 7
//	12 bits  counter bits 31..20
//	 2 bits  variant 10
//	20 bits  counter bits 19..0
//	42 bits  the source's random prefix
//
// The counter starts at a random value and is incremented once per ID, so IDs
// of one source sort by creation within a millisecond. Sources made by Derive
// from one root have distinct prefixes; roots are random, so IDs are unique
// across processes with the probability of a 42-bit random collision that also
// lands in the same millisecond on the same counter value.
package idgen

import (
	"crypto/rand"
	"encoding/binary"
)

const prefixBits = 42

// Source hands out IDs. The zero value is not usable; call Derive. A Source
// is not safe for concurrent use: its owner (a topic) serialises Next under
// the lock it publishes with, so an ID costs no atomic instruction.
type Source struct {
	counter uint32
	prefix  uint64 // low 42 bits used
}

// Root is the random seed of a family of sources (one per bus).
type Root struct {
	prefix uint64
}

// NewRoot draws a random root.
func NewRoot() Root {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	return Root{prefix: binary.LittleEndian.Uint64(b[:])}
}

// Derive returns the source numbered n of the root. Sources with different n
// of the same root never produce the same ID.
func (r Root) Derive(n uint64) *Source {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Source{prefix: (r.prefix + n) & (1<<prefixBits - 1), counter: binary.LittleEndian.Uint32(b[:])}
}

// Next returns a new ID stamped with the given Unix time in milliseconds.
func (s *Source) Next(unixMilli int64) (id [16]byte) {
	s.NextTo(&id, unixMilli)
	return id
}

// NextTo writes a new ID, as Next returns it, into *dst. Where the ID is
// wanted in memory anyway, this spares copying a returned one: a copy
// loads 16 bytes at once, which the processor cannot take from the two
// 8-byte stores that made them until those reach the cache.
func (s *Source) NextTo(dst *[16]byte, unixMilli int64) {
	s.counter++
	c := uint64(s.counter)
	hi := uint64(unixMilli)<<16 | 0x7<<12 | c>>20&0xfff
	lo := 0b10<<62 | (c&0xfffff)<<prefixBits | s.prefix
	binary.BigEndian.PutUint64(dst[:8], hi)
	binary.BigEndian.PutUint64(dst[8:], lo)
}
