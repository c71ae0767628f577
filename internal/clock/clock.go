// Package clock reads the wall clock at the cost of one monotonic clock read.
//
// time.Now reads two clocks (wall and monotonic). On the virtual machines this
// library is benchmarked on, each read is a vDSO call of about 35 ns, and the
// publish path needs one timestamp per event. Now reads only the monotonic
// clock and adds it to a wall-clock anchor that is refreshed every
// ResyncInterval, so a step of the system clock shows up within that interval.
// Between steps the two clocks advance together: Linux slews CLOCK_MONOTONIC
// and CLOCK_REALTIME by the same frequency adjustment.
package clock

import (
	"sync/atomic"
	"time"
)

// ResyncInterval is how long an anchor is trusted before the wall clock is read again.
const ResyncInterval = 100 * time.Millisecond

type anchor struct {
	mono time.Time // carries the monotonic reading
	wall int64     // mono's wall clock in Unix nanoseconds
}

var current atomic.Pointer[anchor]

func init() { resync() }

func resync() *anchor {
	now := time.Now()
	a := &anchor{mono: now, wall: now.UnixNano()}
	current.Store(a)
	return a
}

// Now returns the current wall-clock time in UTC, without a monotonic reading.
// It is safe for concurrent use and does not allocate except once per
// ResyncInterval.
func Now() time.Time {
	return time.Unix(0, UnixNano()).UTC()
}

// UnixNano is Now as nanoseconds since the Unix epoch.
func UnixNano() int64 {
	a := current.Load()
	d := time.Since(a.mono)
	if d < 0 || d >= ResyncInterval {
		a = resync()
		d = 0
	}
	return a.wall + int64(d)
}
