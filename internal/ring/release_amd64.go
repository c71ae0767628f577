//go:build amd64 && !race

package ring

import "sync/atomic"

// storeRelease stores v in *p with a plain MOV. On amd64 every store is a
// release: a reader that loads v also sees every store the producer made
// before it. Unlike p.Store (XCHG), it does not wait for the processor's
// earlier stores to drain, and it does not order itself before the
// producer's later loads (see CommitQuiet).
//
//go:noescape
func storeRelease(p *atomic.Uint64, v uint64)
