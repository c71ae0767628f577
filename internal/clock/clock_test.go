package clock

import (
	"testing"
	"time"
)

func TestNowTracksTheWallClock(t *testing.T) {
	for range 1000 {
		before := time.Now()
		got := Now()
		after := time.Now()
		// The anchor may be up to ResyncInterval old; within it both clocks
		// advance together, so the reading stays between before and after,
		// give or take a microsecond of rounding in the anchor's arithmetic.
		if got.Before(before.Add(-time.Microsecond)) || got.After(after.Add(time.Microsecond)) {
			t.Fatalf("Now() = %v, want between %v and %v", got, before, after)
		}
		if got.Location() != time.UTC {
			t.Fatalf("Now().Location() = %v, want UTC", got.Location())
		}
	}
}

func TestNowResyncsAfterTheInterval(t *testing.T) {
	old := current.Load()
	stale := &anchor{mono: old.mono.Add(-2 * ResyncInterval), wall: old.wall - int64(2*ResyncInterval) - int64(time.Hour)}
	current.Store(stale)
	got := Now()
	if d := time.Since(got); d < -time.Second || d > time.Second {
		t.Fatalf("Now() after a stale anchor is %v away from time.Now", d)
	}
	if current.Load() == stale {
		t.Fatal("Now() kept the stale anchor")
	}
}

func BenchmarkNow(b *testing.B) {
	for b.Loop() {
		_ = Now()
	}
}

func BenchmarkTimeNow(b *testing.B) {
	for b.Loop() {
		_ = time.Now().UTC()
	}
}
