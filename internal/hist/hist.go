// Package hist is a fixed-size, lock-free histogram of durations, for
// handler latency percentiles without allocating per observation.
//
// Buckets are log-linear: below 8 ns one bucket per nanosecond, above that
// eight buckets per power of two, so a quantile is reported within 12.5% of
// the true value, from 1 ns up to about 36 minutes (larger values land in
// the last bucket).
package hist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	subBits    = 3
	subBuckets = 1 << subBits
	maxExp     = 41 // 2^41 ns is about 36 minutes
	nBuckets   = (maxExp-subBits+1)*subBuckets + subBuckets
)

// Histogram counts durations. The zero value is ready to use; it is safe for
// concurrent use.
type Histogram struct {
	counts [nBuckets]atomic.Uint64
}

func index(ns uint64) int {
	if ns < subBuckets {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 // ns >= 2^e
	if e > maxExp {
		return nBuckets - 1
	}
	sub := int(ns>>(e-subBits)) & (subBuckets - 1)
	return (e-subBits+1)*subBuckets + sub
}

// upper returns the largest value that falls in bucket i.
func upper(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	e := i/subBuckets + subBits - 1
	sub := uint64(i % subBuckets)
	return (subBuckets+sub+1)<<(e-subBits) - 1
}

// Record adds one observation. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	h.counts[index(uint64(max(d, 0)))].Add(1)
}

// Snapshot is a copy of a Histogram's counts, for quantiles and sums.
type Snapshot struct {
	counts [nBuckets]uint64
	total  uint64
}

// Snapshot copies the counts; observations recorded meanwhile may or may not
// be included.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	for i := range h.counts {
		n := h.counts[i].Load()
		s.counts[i] = n
		s.total += n
	}
	return s
}

// Add merges o into s.
func (s *Snapshot) Add(o Snapshot) {
	for i := range s.counts {
		s.counts[i] += o.counts[i]
	}
	s.total += o.total
}

// Count is the number of observations.
func (s *Snapshot) Count() uint64 { return s.total }

// Quantile returns the upper bound of the bucket holding the q-quantile
// (0 <= q <= 1), or 0 when there are no observations.
func (s *Snapshot) Quantile(q float64) time.Duration {
	if s.total == 0 {
		return 0
	}
	rank := uint64(q*float64(s.total-1)) + 1
	var seen uint64
	for i, n := range s.counts {
		seen += n
		if seen >= rank {
			return time.Duration(upper(i))
		}
	}
	return time.Duration(upper(nBuckets - 1))
}
