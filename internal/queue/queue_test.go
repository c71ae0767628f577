package queue

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func push(t *testing.T, q *Queue[int], p Policy, v int) (Result, Outcome, int) {
	t.Helper()
	r, _ := q.Reserve(p)
	if r != Reserved {
		return r, 0, 0
	}
	old, out := q.Commit(v)
	return r, out, old
}

func TestReserveAppliesThePolicyWhenFull(t *testing.T) {
	tests := []struct {
		policy Policy
		want   Result
	}{
		{Block, Full},
		{Reject, Full},
		{DropNewest, Dropped},
		{DropOldest, Reserved},
	}
	for _, tt := range tests {
		q := New[int](2)
		push(t, q, tt.policy, 1)
		push(t, q, tt.policy, 2)
		r, wait := q.Reserve(tt.policy)
		assert.Equal(t, tt.want, r, "policy %d", tt.policy)
		assert.Equal(t, tt.policy == Block, wait != nil, "only Block gets a channel to wait on")
	}
}

func TestDropOldestEvictsTheOldest(t *testing.T) {
	q := New[int](2)
	push(t, q, DropOldest, 1)
	push(t, q, DropOldest, 2)
	r, out, old := push(t, q, DropOldest, 3)
	require.Equal(t, Reserved, r)
	assert.Equal(t, Evicted, out)
	assert.Equal(t, 1, old)
	got, ok := q.Pop(nil, 10)
	assert.True(t, ok)
	assert.Equal(t, []int{2, 3}, got)
}

func TestReservationsCountAgainstCapacity(t *testing.T) {
	q := New[int](1)
	r, _ := q.Reserve(Reject)
	require.Equal(t, Reserved, r)
	r, _ = q.Reserve(Reject)
	assert.Equal(t, Full, r, "the held place is taken")
	q.Cancel()
	r, _ = q.Reserve(Reject)
	assert.Equal(t, Reserved, r, "a cancelled place is free again")
}

func TestBlockedProducerIsWokenByPop(t *testing.T) {
	q := New[int](1)
	push(t, q, Block, 1)
	r, wait := q.Reserve(Block)
	require.Equal(t, Full, r)
	_, _ = q.Pop(nil, 1)
	<-wait // closed by Pop; the test would hang otherwise
	r, _ = q.Reserve(Block)
	assert.Equal(t, Reserved, r)
}

func TestPopWaitsForAnItemAndStopsAtClose(t *testing.T) {
	q := New[int](4)
	got := make(chan []int)
	go func() {
		items, _ := q.Pop(nil, 4)
		got <- items
	}()
	push(t, q, Block, 7)
	assert.Equal(t, []int{7}, <-got)

	push(t, q, Block, 8)
	q.Close()
	r, _ := q.Reserve(Block)
	assert.Equal(t, Closed, r, "no intake after Close")
	items, ok := q.Pop(nil, 4)
	assert.True(t, ok, "what was queued before Close is still handed out")
	assert.Equal(t, []int{8}, items)
	_, ok = q.Pop(nil, 4)
	assert.False(t, ok)
}

func TestCommitAfterCloseIsRefused(t *testing.T) {
	q := New[int](2)
	r, _ := q.Reserve(Block)
	require.Equal(t, Reserved, r)
	q.Close()
	v, out := q.Commit(5)
	assert.Equal(t, Refused, out)
	assert.Equal(t, 5, v)
	assert.Zero(t, q.Len())
}

func TestDiscardEmptiesAndCloses(t *testing.T) {
	q := New[int](3)
	for v := range 3 {
		push(t, q, Block, v)
	}
	assert.Equal(t, 3, q.HighWater())
	assert.Equal(t, []int{0, 1, 2}, q.Discard(nil))
	assert.Zero(t, q.Len())
	assert.Equal(t, 3, q.HighWater(), "the high-water mark stays")
	_, ok := q.Pop(nil, 1)
	assert.False(t, ok)
}

func TestFIFOAcrossWrapAround(t *testing.T) {
	q := New[int](3)
	next := 0
	for v := range 100 {
		push(t, q, Block, v)
		if v%2 == 1 {
			items, _ := q.Pop(nil, 2)
			for _, it := range items {
				require.Equal(t, next, it)
				next++
			}
		}
	}
}
