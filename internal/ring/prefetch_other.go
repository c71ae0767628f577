//go:build !amd64

package ring

import "unsafe"

// havePrefetchw is false here: see prefetch_amd64.go.
const havePrefetchw = false

func prefetchw(unsafe.Pointer, uintptr) {}
