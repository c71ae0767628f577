// Package queue is the delivery buffer of one subscription: a bounded FIFO
// with the overflow policies of eventbus.OnFull.
//
// Publishing is two-phase so that a publish to many subscriptions is all or
// nothing: Reserve a place in every queue first, then Commit the event to all
// of them, or Cancel every reservation if one queue refuses. A reservation
// counts against the capacity, so a Commit never finds the queue full, except
// under DropOldest, whose Commit evicts the oldest event instead.
package queue

import "sync"

// Policy says what Reserve does when the queue is full.
type Policy uint8

// The policies, in the order of eventbus.FullPolicy.
const (
	Block Policy = iota
	DropNewest
	DropOldest
	Reject
)

// Result is the outcome of Reserve.
type Result uint8

const (
	// Reserved: a place is held for the next Commit.
	Reserved Result = iota
	// Dropped: the queue is full and its policy drops the new event.
	Dropped
	// Full: the queue is full and its policy keeps the caller out (Block waits
	// on the returned channel and tries again; Reject gives up).
	Full
	// Closed: the queue no longer accepts events.
	Closed
)

// Queue is a bounded FIFO safe for any number of producers and consumers.
type Queue[E any] struct {
	mu       sync.Mutex
	buf      []E
	head     int // index of the oldest item
	n        int // items in buf
	reserved int
	high     int
	closed   bool
	readable chan struct{} // closed when an item arrives or the queue closes; nil when no consumer waits
	writable chan struct{} // closed when room appears or the queue closes; nil when no producer waits
}

// New returns an empty queue that holds at most capacity items (capacity > 0).
func New[E any](capacity int) *Queue[E] {
	return &Queue[E]{buf: make([]E, capacity)}
}

// Reserve holds a place for one item. When it returns Full under Block, the
// channel is closed as soon as a place may have become free (or the queue
// closed); the caller waits on it and calls Reserve again.
func (q *Queue[E]) Reserve(p Policy) (Result, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return Closed, nil
	case q.n+q.reserved < len(q.buf) || p == DropOldest:
		q.reserved++
		return Reserved, nil
	case p == DropNewest:
		return Dropped, nil
	case p == Reject:
		return Full, nil
	}
	if q.writable == nil {
		q.writable = make(chan struct{})
	}
	return Full, q.writable
}

// Cancel gives back a place taken by Reserve.
func (q *Queue[E]) Cancel() {
	q.mu.Lock()
	q.reserved--
	q.wakeWriters()
	q.mu.Unlock()
}

// Outcome is the outcome of Commit.
type Outcome uint8

const (
	// Appended: the item is queued.
	Appended Outcome = iota
	// Evicted: the item is queued and the oldest one, returned, was removed
	// to make room for it (DropOldest).
	Evicted
	// Refused: the queue was closed after the reservation; the item, returned,
	// was not queued.
	Refused
)

// Commit appends e in a place taken by Reserve.
func (q *Queue[E]) Commit(e E) (E, Outcome) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reserved--
	if q.closed {
		return e, Refused
	}
	var evicted E
	out := Appended
	if q.n == len(q.buf) {
		evicted, out = q.buf[q.head], Evicted
		var zero E
		q.buf[q.head] = zero
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	q.high = max(q.high, q.n)
	if q.readable != nil {
		close(q.readable)
		q.readable = nil
	}
	return evicted, out
}

// Pop appends up to max items to dst, oldest first, waiting while the queue is
// empty. It returns false once the queue is closed and empty.
func (q *Queue[E]) Pop(dst []E, max int) ([]E, bool) {
	q.mu.Lock()
	for q.n == 0 {
		if q.closed {
			q.mu.Unlock()
			return dst, false
		}
		if q.readable == nil {
			q.readable = make(chan struct{})
		}
		ch := q.readable
		q.mu.Unlock()
		<-ch
		q.mu.Lock()
	}
	dst = q.take(dst, max)
	q.wakeWriters()
	q.mu.Unlock()
	return dst, true
}

// Close stops intake: later Reserve calls return Closed. Items already queued
// stay for Pop.
func (q *Queue[E]) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		q.wakeWriters()
		if q.readable != nil {
			close(q.readable)
			q.readable = nil
		}
	}
	q.mu.Unlock()
}

// Discard closes the queue and removes every item, appending them to dst.
func (q *Queue[E]) Discard(dst []E) []E {
	q.Close()
	q.mu.Lock()
	dst = q.take(dst, q.n)
	q.mu.Unlock()
	return dst
}

// Len is the number of items waiting.
func (q *Queue[E]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Full reports whether a Block reservation would have to wait now.
func (q *Queue[E]) Full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.closed && q.n+q.reserved >= len(q.buf)
}

// Cap is the capacity given to New.
func (q *Queue[E]) Cap() int { return len(q.buf) }

// HighWater is the largest Len the queue has had.
func (q *Queue[E]) HighWater() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.high
}

func (q *Queue[E]) take(dst []E, max int) []E {
	var zero E
	for ; max > 0 && q.n > 0; max-- {
		dst = append(dst, q.buf[q.head])
		q.buf[q.head] = zero // let the garbage collector have the payload
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
	return dst
}

func (q *Queue[E]) wakeWriters() {
	if q.writable != nil {
		close(q.writable)
		q.writable = nil
	}
}
