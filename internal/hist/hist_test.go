package hist

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueInOrder(t *testing.T) {
	prev := -1
	for ns := uint64(0); ns < 1<<20; ns++ {
		i := index(ns)
		if i < prev || i > prev+1 {
			t.Fatalf("index(%d) = %d after %d: buckets must be contiguous", ns, i, prev)
		}
		if ns > upper(i) {
			t.Fatalf("%d is above the upper bound %d of its bucket %d", ns, upper(i), i)
		}
		if i > 0 && ns <= upper(i-1) {
			t.Fatalf("%d also fits bucket %d", ns, i-1)
		}
		prev = i
	}
	if got := index(1 << 62); got != nBuckets-1 {
		t.Fatalf("a huge value lands in bucket %d, want the last (%d)", got, nBuckets-1)
	}
}

func TestQuantilesAreWithinABucketOfTheTruth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var values []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(50*time.Microsecond))
		values = append(values, d)
		h.Record(d)
	}
	slices.Sort(values)
	s := h.Snapshot()
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := values[int(q*float64(len(values)-1))]
		got := s.Quantile(q)
		if got < want || float64(got) > float64(want)*1.126+1 {
			t.Errorf("q%.2f = %v, want within 12.5%% above %v", q, got, want)
		}
	}
	if s.Count() != 100000 {
		t.Errorf("Count() = %d", s.Count())
	}
}

func TestEmptyAndMerged(t *testing.T) {
	var a, b Histogram
	s := a.Snapshot()
	if got := s.Quantile(0.5); got != 0 {
		t.Fatalf("empty quantile = %v", got)
	}
	a.Record(time.Microsecond)
	b.Record(time.Millisecond)
	b.Record(-time.Second)
	s = a.Snapshot()
	s.Add(b.Snapshot())
	if s.Count() != 3 || s.Quantile(0) != 0 || s.Quantile(1) < time.Millisecond {
		t.Fatalf("merged: count %d, min %v, max %v", s.Count(), s.Quantile(0), s.Quantile(1))
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	for b.Loop() {
		h.Record(1234 * time.Nanosecond)
	}
}
