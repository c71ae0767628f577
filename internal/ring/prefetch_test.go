package ring

import (
	"bytes"
	"os"
	"runtime"
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

// TestHavePrefetchwAgreesWithTheKernel compares the CPUID check with the
// flag Linux derives from the same bit.
func TestHavePrefetchwAgreesWithTheKernel(t *testing.T) {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || runtime.GOARCH != "amd64" {
		t.Skip("no /proc/cpuinfo of an amd64 processor here")
	}
	flags := strings.Fields(string(info))
	if got, want := havePrefetchw, slices.Contains(flags, "3dnowprefetch"); got != want {
		t.Fatalf("havePrefetchw is %v; /proc/cpuinfo's 3dnowprefetch flag says %v", got, want)
	}
}
