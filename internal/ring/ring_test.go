package ring

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// produce puts n values, waiting for room for every group like a Block
// publisher; mu is the producer lock.
func produce(r *Ring[int], mu *sync.Mutex, from, n int) {
	for v := from; v < from+n; v++ {
		for {
			mu.Lock()
			var full *Group[int]
			for _, g := range r.groups {
				if !g.Room() {
					full = g
				}
			}
			if full == nil {
				r.Put(&v)
				mu.Unlock()
				break
			}
			wait := full.WaitRoom()
			mu.Unlock()
			<-wait
		}
	}
}

// consume reads from a worker until Done and returns what it got.
func consume(w *Worker[int]) []int {
	var got []int
	for {
		v, st := w.Next()
		switch st {
		case Done:
			return got
		case Got:
			got = append(got, *v)
		}
	}
}

func TestEveryGroupReadsEveryEventInOrder(t *testing.T) {
	const n = 100_000
	r := New[int](64)
	var mu sync.Mutex
	mu.Lock()
	groups := []*Group[int]{r.Add(64, 1, 16), r.Add(8, 1, 1), r.Add(32, 1, 64)}
	mu.Unlock()
	results := make([][]int, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { results[i] = consume(g.Workers()[0]) })
	}
	produce(r, &mu, 0, n)
	mu.Lock()
	r.Close()
	mu.Unlock()
	wg.Wait()

	for i, got := range results {
		require.Len(t, got, n, "group %d", i)
		for v := range n {
			if got[v] != v {
				t.Fatalf("group %d: position %d holds %d", i, v, got[v])
			}
		}
	}
}

func TestWorkersOfAGroupShareItsEvents(t *testing.T) {
	const n = 50_000
	r := New[int](128)
	var mu sync.Mutex
	g := r.Add(100, 4, 1)
	results := make([][]int, 4)
	var wg sync.WaitGroup
	for i, w := range g.Workers() {
		wg.Go(func() { results[i] = consume(w) })
	}
	produce(r, &mu, 0, n)
	mu.Lock()
	r.Close()
	mu.Unlock()
	wg.Wait()

	seen := make([]bool, n)
	total := 0
	for _, got := range results {
		for _, v := range got {
			require.False(t, seen[v], "value %d handed out twice", v)
			seen[v] = true
		}
		total += len(got)
	}
	assert.Equal(t, n, total)
}

func TestRoomCountsWaitingAndBatchedEvents(t *testing.T) {
	r := New[int](16)
	g := r.Add(3, 1, 8)
	w := g.Workers()[0]
	for v := range 3 {
		require.True(t, g.Room(), "event %d", v)
		r.Put(&v)
	}
	assert.False(t, g.Room(), "three waiting fill a capacity of three")
	assert.Equal(t, 3, g.Len())

	v, st := w.Next() // takes the whole run of three, starts one
	require.Equal(t, Got, st)
	assert.Equal(t, 0, *v)
	assert.Equal(t, 2, g.Len())
	assert.True(t, g.Room(), "the started event left the buffer")
	four := 3
	r.Put(&four)
	assert.False(t, g.Room(), "two in the run and one in the ring fill it again")
	assert.Equal(t, 3, g.HighWater())
}

func TestRingRoomIsTheRoomOfEveryGroup(t *testing.T) {
	r := New[int](16)
	small, large := r.Add(3, 1, 1), r.Add(8, 1, 1)
	for v := range 3 {
		require.True(t, r.Room(), "event %d", v)
		r.Put(&v)
	}
	assert.False(t, r.Room(), "the group of three is full")

	_, st := small.Workers()[0].Next()
	require.Equal(t, Got, st)
	require.True(t, r.Room(), "the small group started one")
	three := 3
	r.Put(&three)
	assert.False(t, r.Room(), "and is full again")
	next := func() {
		t.Helper()
		_, st := small.Workers()[0].Next()
		require.Equal(t, Got, st)
	}
	for range 3 {
		next()
	}
	for v := 4; v < 8; v++ { // the small group keeps up
		require.True(t, r.Room(), "event %d", v)
		r.Put(&v)
		next()
	}
	assert.False(t, r.Room(), "now the group of eight is full, though the small one is not")
	assert.True(t, small.Room())
	assert.False(t, large.Room())

	// A group that joins or leaves counts from then on.
	r.Remove(large)
	assert.True(t, r.Room(), "the full group left")
	late := r.Add(1, 1, 1)
	v := 8
	r.Put(&v)
	assert.False(t, r.Room(), "the group that joined holds one, its capacity")
	assert.False(t, late.Room())
}

func TestEvictTakesTheOldest(t *testing.T) {
	r := New[int](4)
	g := r.Add(2, 1, 1)
	for v := range 2 {
		r.Put(&v)
	}
	var old int
	require.True(t, g.Evict(&old))
	assert.Equal(t, 0, old)
	v := 2
	r.Put(&v)
	v1, _ := g.Workers()[0].Next()
	assert.Equal(t, 1, *v1)
	v2, _ := g.Workers()[0].Next()
	assert.Equal(t, 2, *v2)
	assert.False(t, g.Evict(&old), "nothing left")
}

func TestDiscardAndTakeRunsSettleEverythingOnce(t *testing.T) {
	r := New[int](16)
	g := r.Add(10, 1, 4)
	w := g.Workers()[0]
	for v := range 7 {
		r.Put(&v)
	}
	first, _ := w.Next() // run [0, 4), 0 started
	require.Equal(t, 0, *first)

	var discarded []int
	assert.Equal(t, 3, g.Discard(func(v *int) { discarded = append(discarded, *v) }))
	assert.Equal(t, []int{4, 5, 6}, discarded, "the ring's part")
	assert.Equal(t, 3, g.TakeRuns(), "the run's part not yet started")

	var taken []int
	for range 3 {
		v, st := w.Next()
		require.Equal(t, Taken, st)
		taken = append(taken, *v)
	}
	assert.Equal(t, []int{1, 2, 3}, taken)
	assert.Zero(t, g.Len())
	r.Close()
	_, st := w.Next()
	assert.Equal(t, Done, st)
}

func TestRemovedGroupStopsAndNoLongerHoldsTheProducer(t *testing.T) {
	r := New[int](4)
	stuck := r.Add(4, 1, 1)
	other := r.Add(4, 1, 4)
	for v := range 4 {
		r.Put(&v)
	}
	assert.False(t, stuck.Room())
	stuck.Discard(func(*int) {})
	r.Remove(stuck)
	_, st := stuck.Workers()[0].Next()
	assert.Equal(t, Done, st)

	got := 0
	for range 4 {
		_, st := other.Workers()[0].Next()
		require.Equal(t, Got, st)
		got++
	}
	for v := range 4 { // the ring is free again for the remaining group
		require.True(t, other.Room())
		r.Put(&v)
	}
	assert.Equal(t, 4, got)
}

func TestParkedWorkersWakeForPutAndClose(t *testing.T) {
	r := New[int](8)
	var mu sync.Mutex
	g := r.Add(8, 2, 1)
	results := make([][]int, 2)
	var wg sync.WaitGroup
	for i, w := range g.Workers() {
		wg.Go(func() { results[i] = consume(w) })
	}
	for v := range 3 { // slowly: the workers park between events
		produce(r, &mu, v, 1)
	}
	mu.Lock()
	r.Close()
	mu.Unlock()
	wg.Wait()
	assert.Len(t, append(results[0], results[1]...), 3)
}

func TestAddRefusesAGroupLargerThanTheRing(t *testing.T) {
	r := New[int](4)
	assert.Panics(t, func() { r.Add(5, 1, 1) })
	assert.Panics(t, func() { r.Add(1, 0, 1) })
}

func BenchmarkPutNext(b *testing.B) {
	r := New[int](1024)
	var mu sync.Mutex
	g := r.Add(1000, 1, 64)
	done := make(chan int)
	go func() { done <- len(consume(g.Workers()[0])) }()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		produce(r, &mu, n, 1)
		n++
	}
	mu.Lock()
	r.Close()
	mu.Unlock()
	if got := <-done; got != n {
		b.Fatalf("consumed %d of %d", got, n)
	}
}

// BenchmarkCacheLineRoundTrip measures the machine rather than the ring: two
// goroutines pass a counter back and forth through one cache line, so each
// iteration is two transfers of the line between the cores they run on.
// Every event a reader takes while it keeps up with the producer costs one
// such transfer of a slot's line, which bounds the ring's events/s when the
// reader is never behind.
func BenchmarkCacheLineRoundTrip(b *testing.B) {
	var line struct {
		_    [64]byte
		n    atomic.Uint64
		_    [64]byte
		stop atomic.Bool
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for want := uint64(1); ; want += 2 {
			for line.n.Load() != want {
				if line.stop.Load() {
					return
				}
			}
			line.n.Store(want + 1)
		}
	}()
	var want uint64
	for b.Loop() {
		line.n.Store(want + 1)
		want += 2
		for line.n.Load() != want {
			runtime.KeepAlive(&line) // spin; the loop has nothing else to do
		}
	}
	line.stop.Store(true)
	<-done
}

// A streaming worker that finds fewer than minRun events waits once for more
// (see Next); when no more come it must still take the few that wait, at
// once after the wait, and never park on them.
func TestAStreamingWorkerTakesAFewEventsWithoutWaitingForMore(t *testing.T) {
	r := New[int](4 * minRun)
	g := r.Add(4*minRun, 1, minRun)
	w := g.Workers()[0]
	for round := range 50 {
		for v := range minRun - 1 {
			r.Put(&v)
		}
		got := make(chan int, minRun)
		go func() {
			for range minRun - 1 {
				v, st := w.Next()
				if st != Got {
					got <- -1
					return
				}
				got <- *v
			}
		}()
		for v := range minRun - 1 {
			select {
			case x := <-got:
				require.Equal(t, v, x, "round %d", round)
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: the worker did not take event %d of %d waiting", round, v, minRun-1)
			}
		}
	}
	assert.False(t, w.Asleep(), "the worker parked although events waited")
}

// A worker lingers for a run only where one can build up: not in a group
// too small for it, and not while the producer waits for the room the
// worker would make by taking what is there.
func TestAWorkerLingersOnlyWhereARunCanBuildUp(t *testing.T) {
	take := func(r *Ring[int], g *Group[int], n int) *Worker[int] {
		for v := range n {
			r.Put(&v)
		}
		w := g.Workers()[0]
		for v := range n {
			got, st := w.Next()
			require.Equal(t, Got, st)
			require.Equal(t, v, *got)
		}
		return w
	}

	r := New[int](4 * minRun)
	w := take(r, r.Add(4*minRun, 1, minRun), 3)
	assert.EqualValues(t, maxLingers, w.lingers, "a large group, a few events: the worker waits a few times for more")

	r = New[int](4 * minRun)
	w = take(r, r.Add(2*minRun-1, 1, minRun), 3)
	assert.Zero(t, w.lingers, "a group too small for a run")

	r = New[int](4 * minRun)
	g := r.Add(4*minRun, 1, minRun)
	r.waiters.Store(1) // a producer waits for room
	w = take(r, g, 3)
	assert.Zero(t, w.lingers, "a producer waiting for room")
}

// TestCommitLosesNoWakeUp puts events one at a time under a lock, as the
// bus does. Every other
// event goes to a worker known to be parked; the rest race with a worker on
// its way to park, the case an unordered store could lose. Each event must reach
// the worker without another put after it.
func TestCommitLosesNoWakeUp(t *testing.T) {
	const n = 20_000
	r := New[int](64)
	var mu sync.Mutex
	mu.Lock()
	w := r.Add(64, 1, 1).Workers()[0]
	mu.Unlock()
	got := make(chan int)
	go func() {
		for {
			v, st := w.Next()
			if st == Done {
				close(got)
				return
			}
			got <- *v
		}
	}()
	deadline := time.NewTimer(time.Hour)
	for i := range n {
		if i%2 == 0 {
			for !w.Asleep() {
				runtime.Gosched()
			}
		}
		mu.Lock()
		*r.Claim() = i
		r.Commit()
		mu.Unlock()
		deadline.Reset(10 * time.Second)
		select {
		case v := <-got:
			require.Equal(t, i, v)
		case <-deadline.C:
			t.Fatalf("event %d was put and its worker never woke (parked: %v)", i, w.Asleep())
		}
	}
	mu.Lock()
	r.Close()
	mu.Unlock()
	_, open := <-got
	assert.False(t, open)
}

// TestAWakeUpWhileAWorkerParksLeavesTheOthersCounted wakes worker B in the
// middle of parking, as a waker that saw B asleep but not A could, and then
// puts an event while A sleeps: A must be woken for it. Were B counted
// among the parked only after it could be woken, the wake-up would take
// A's count, and the put would find none parked and leave A asleep.
func TestAWakeUpWhileAWorkerParksLeavesTheOthersCounted(t *testing.T) {
	r := New[int](64)
	var mu sync.Mutex
	mu.Lock()
	a, b := r.Add(64, 1, 1).Workers()[0], r.Add(64, 1, 1).Workers()[0]
	mu.Unlock()
	var once sync.Once
	parkHook = func(w any) {
		if w != any(b) {
			return
		}
		once.Do(func() {
			for !a.Asleep() {
				runtime.Gosched()
			}
			b.wakeUp()
			mu.Lock()
			*r.Claim() = 7
			r.Commit()
			mu.Unlock()
		})
	}
	defer func() { parkHook = nil }()
	gotA, gotB := make(chan int, 1), make(chan int, 1)
	var wg sync.WaitGroup
	for _, c := range []struct {
		w   *Worker[int]
		got chan int
	}{{a, gotA}, {b, gotB}} {
		wg.Go(func() {
			for {
				v, st := c.w.Next()
				if st == Done {
					return
				}
				c.got <- *v
			}
		})
	}
	for name, got := range map[string]chan int{"A": gotA, "B": gotB} {
		select {
		case v := <-got:
			assert.Equal(t, 7, v, name)
		case <-time.After(5 * time.Second):
			t.Errorf("worker %s never got the event (asleep: A %v, B %v; parked %d)", name, a.Asleep(), b.Asleep(), r.parked.Load())
		}
	}
	mu.Lock()
	r.Close()
	mu.Unlock()
	wg.Wait()
}
