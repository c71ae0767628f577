package clock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// steadyAnchor measures the counter's rate over two real intervals, as
// two resyncs would, and returns the anchor that extrapolates with ticks.
func steadyAnchor(t *testing.T) *anchor {
	t.Helper()
	if !haveTicks {
		t.Skip("no tick counter on this architecture: Now reads the monotonic clock")
	}
	a := read()
	for range 2 {
		time.Sleep(ResyncInterval * 6 / 10)
		a = next(a, read(), true)
	}
	require.NotZero(t, a.span, "two intervals of a steady counter measured rates that disagree")
	return a
}

// withAnchor makes a the current anchor for the rest of the test.
func withAnchor(t *testing.T, a *anchor) {
	old := current.Load()
	current.Store(a)
	t.Cleanup(func() { current.Store(old) })
}

func TestNowTracksTheWallClock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		anchor func(t *testing.T) *anchor
	}{
		{"extrapolating with the monotonic clock", func(*testing.T) *anchor { return read() }},
		{"extrapolating with ticks", steadyAnchor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withAnchor(t, tc.anchor(t))
			for range 1000 {
				before := time.Now()
				got := Now()
				after := time.Now()
				// The anchor may be up to ResyncInterval old; within it the
				// clocks advance together, so the reading stays between before
				// and after, give or take a microsecond of rounding and of the
				// counter's rate measured over the previous interval.
				if got.Before(before.Add(-time.Microsecond)) || got.After(after.Add(time.Microsecond)) {
					t.Fatalf("Now() = %v, want between %v and %v", got, before, after)
				}
				if got.Location() != time.UTC {
					t.Fatalf("Now().Location() = %v, want UTC", got.Location())
				}
			}
		})
	}
}

func TestNowExtrapolatesFromTheAnchorUntilItExpires(t *testing.T) {
	steady := steadyAnchor(t)
	const hour = int64(time.Hour)
	// An anchor an hour off shows whether Now used it or read the wall clock.
	for _, tc := range []struct {
		name     string
		shift    func(a *anchor)
		wantUsed bool
	}{
		{"a fresh tick anchor is used", func(a *anchor) {}, true},
		{"an expired tick anchor is replaced", func(a *anchor) { a.tick -= a.span + 1 }, false},
		{"a counter behind the anchor replaces it", func(a *anchor) { a.tick += a.span / 2 }, false},
		{"a fresh monotonic anchor is used", func(a *anchor) { a.span = 0 }, true},
		{"an expired monotonic anchor is replaced", func(a *anchor) {
			a.span = 0
			a.mono = a.mono.Add(-2 * ResyncInterval)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			a := &anchor{mono: now, wall: now.UnixNano() - hour, tick: ticks(), rate: steady.rate, span: steady.span}
			tc.shift(a)
			withAnchor(t, a)
			off := time.Since(Now())
			if tc.wantUsed {
				assert.InDelta(t, time.Hour, off, float64(time.Second), "Now() did not extrapolate from the anchor")
				assert.Same(t, a, current.Load(), "Now() replaced an anchor that had not expired")
			} else {
				assert.InDelta(t, 0, off, float64(time.Second), "Now() extrapolated from an expired anchor")
				assert.NotSame(t, a, current.Load(), "Now() kept an expired anchor")
			}
		})
	}
}

func TestRateIsMeasuredOverALongEnoughWindow(t *testing.T) {
	t0 := time.Now()
	at := func(d time.Duration, tick uint64) *anchor { return &anchor{mono: t0.Add(d), tick: tick} }
	const ghz = 2_600_000_000 // ticks per second
	for _, tc := range []struct {
		name  string
		a, b  *anchor
		ticks uint64 // in ResyncInterval at the measured rate; 0: no rate
	}{
		{"a 2.6 GHz counter over one interval", at(0, 1000), at(ResyncInterval, 1000+ghz/10), ghz / 10},
		{"a 1 MHz counter over ten intervals", at(0, 5), at(10*ResyncInterval, 5+1_000_000), 100_000},
		{"a window shorter than half an interval", at(0, 1000), at(ResyncInterval/3, 1000+ghz/30), 0},
		{"a counter that did not move", at(0, 1000), at(ResyncInterval, 1000), 0},
		{"a counter that went back", at(0, 1000), at(ResyncInterval, 999), 0},
		{"a counter slower than a tick per 4 s", at(0, 1000), at(10*time.Second, 1001), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rate(tc.a, tc.b)
			if tc.ticks == 0 {
				assert.Zero(t, r)
				return
			}
			assert.InEpsilon(t, tc.ticks, spanOf(r), 1e-6)
		})
	}
}

func TestTicksAreUsedOnlyWhileTwoIntervalsAgree(t *testing.T) {
	t0 := time.Now()
	const perInterval = 260_000_000 // ticks
	// Each step is one interval whose counter advances by perInterval times
	// its speed; span says whether Now extrapolates with ticks after it.
	steps := []struct {
		speed    float64
		useTicks bool
		wantSpan bool
	}{
		{1, true, false},                  // the first rate has nothing to agree with
		{1, true, true},                   // two intervals agree
		{1.00005, true, true},             // 50 ppm: still the same rate
		{1.01, true, false},               // the counter changed speed
		{1.01, true, true},                // and is steady again
		{1.01, false, false},              // the counter is not cheap to read
		{1e-12, true, false},              // the counter stopped
		{1.01, true, false},               // and started again: one interval to measure
		{1.01, true, true},                // steady
		{-1.0 / perInterval, true, false}, // it went back one tick
	}
	a := &anchor{mono: t0, tick: 1 << 40}
	for i, s := range steps {
		b := &anchor{mono: a.mono.Add(ResyncInterval), tick: a.tick + uint64(int64(s.speed*perInterval))}
		a = next(a, b, s.useTicks)
		assert.Equal(t, s.wantSpan, a.span != 0, "step %d (speed %v, useTicks %v)", i, s.speed, s.useTicks)
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

// Two goroutines that find the same anchor expired both read a fresh one;
// only the first is stored, and the second resync returns it rather than
// replacing it with its own, older by the time it is stored.
func TestAResyncOfAReplacedAnchorKeepsTheNewerOne(t *testing.T) {
	prev := current.Load()
	first := resync(prev)
	second := resync(prev)
	if second != first || current.Load() != first {
		t.Fatalf("the second resync of the same expired anchor stored its own: first %+v, second %+v, current %+v", first, second, current.Load())
	}
}
