package ring

import "unsafe"

// havePrefetchw says the processor has PREFETCHW (CPUID's PRFCHW bit). Some
// early amd64 processors fault on its opcode; Intel's report it from
// Broadwell on, AMD's from the first.
var havePrefetchw = cpuidPrefetchw()

// prefetchw asks the processor to fetch the cache lines of the n bytes at p
// for writing, and returns without waiting for them (PREFETCHW). The
// lines' contents do not change. Call it only if havePrefetchw.
//
//go:noescape
func prefetchw(p unsafe.Pointer, n uintptr)

func cpuidPrefetchw() bool
