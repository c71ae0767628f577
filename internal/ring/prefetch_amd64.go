package ring

import "unsafe"

// havePrefetchw says the processor has PREFETCHW: CPUID leaf 80000001h,
// ECX bit 8 (PRFCHW). Some early amd64 processors fault on its opcode;
// Intel's report it from Broadwell on, AMD's from the first.
var havePrefetchw = func() bool {
	if top, _, _, _ := cpuid(0x8000_0000, 0); top < 0x8000_0001 {
		return false
	}
	_, _, ecx, _ := cpuid(0x8000_0001, 0)
	return ecx&(1<<8) != 0
}()

// prefetchw asks the processor to fetch the cache lines of the n bytes at p
// for writing, and returns without waiting for them (PREFETCHW). The
// lines' contents do not change. Call it only if havePrefetchw.
//
//go:noescape
func prefetchw(p unsafe.Pointer, n uintptr)

// cpuid runs the CPUID instruction for leaf eaxArg and subleaf ecxArg.
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
