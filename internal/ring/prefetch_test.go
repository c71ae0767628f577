package ring

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestPrefetchwLeavesMemoryAsItWas runs prefetchw over every start within
// a few lines and every length up to several lines: it must return (its
// loop ends) and change nothing.
func TestPrefetchwLeavesMemoryAsItWas(t *testing.T) {
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
