package ring

import "unsafe"

// prefetchw asks the processor to fetch the cache lines of the n bytes at p
// for writing, and returns without waiting for them (PREFETCHW). The
// lines' contents do not change.
//
//go:noescape
func prefetchw(p unsafe.Pointer, n uintptr)
