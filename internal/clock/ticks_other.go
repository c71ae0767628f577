//go:build !amd64

package clock

// haveTicks says ticks reads a counter; on this architecture it does not,
// and Now reads the monotonic clock.
const haveTicks = false

func ticks() uint64 { return 0 }
