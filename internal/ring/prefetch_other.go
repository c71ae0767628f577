//go:build !amd64

package ring

import "unsafe"

// prefetchw does nothing here: see prefetch_amd64.go.
func prefetchw(unsafe.Pointer, uintptr) {}
