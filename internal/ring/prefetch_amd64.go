package ring

import "unsafe"

// prefetchw asks the processor to fetch the cache lines of the n bytes at p
// for writing, and returns without waiting for them (PREFETCHW). The
// lines' contents do not change. Its opcode, 0F 0D /1, is PREFETCHW on every
// amd64 processor that has the instruction and a no-op on the Intel ones
// before Broadwell that do not.
//
//go:noescape
func prefetchw(p unsafe.Pointer, n uintptr)
