//go:build !amd64 || race

package ring

import "sync/atomic"

// storeRelease is p.Store here: on other processors a plain store may be
// seen before the stores that precede it, and the race detector
// understands only sync/atomic.
func storeRelease(p *atomic.Uint64, v uint64) { p.Store(v) }
