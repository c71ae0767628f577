package ring

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestPrefetchwLeavesMemoryAsItWas runs prefetchw over every start within
// a few lines and every length up to several lines: it must return (its
// loop ends) and change nothing.
func TestPrefetchwLeavesMemoryAsItWas(t *testing.T) {
	if !havePrefetchw {
		t.Skip("the processor has no PREFETCHW")
	}
	buf := make([]byte, 1024)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	want := bytes.Clone(buf)
	for off := range 130 {
		for n := 1; off+n <= len(buf) && n <= 400; n++ {
			prefetchw(unsafe.Pointer(&buf[off]), uintptr(n))
		}
	}
	if !bytes.Equal(buf, want) {
		t.Fatal("prefetchw changed the memory it fetched")
	}
}

// TestCPUIDAgreesWithTheKernel checks cpuid against what Linux read with the
// same instruction: the vendor (leaf 0), the 64-bit mode flag (leaf
// 80000001h, EDX bit 29, next to the PRFCHW bit havePrefetchw reads in ECX)
// and PREFETCHW. Linux also sets 3dnowprefetch on AMD processors whose
// CPUID does not say so, so only its absence is checked against
// havePrefetchw.
func TestCPUIDAgreesWithTheKernel(t *testing.T) {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo here")
	}
	fields := strings.Fields(string(info))
	_, b, c, d := cpuid(0, 0)
	vendor := string(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, b), d), c))
	if !slices.Contains(fields, vendor) {
		t.Errorf("cpuid(0) names the vendor %q, which /proc/cpuinfo does not", vendor)
	}
	_, _, _, d = cpuid(0x8000_0001, 0)
	if lm := d&(1<<29) != 0; lm != slices.Contains(fields, "lm") {
		t.Errorf("cpuid(80000001h) says 64-bit mode is %v; /proc/cpuinfo disagrees", lm)
	}
	if havePrefetchw && !slices.Contains(fields, "3dnowprefetch") {
		t.Error("havePrefetchw, but /proc/cpuinfo has no 3dnowprefetch flag")
	}
}
