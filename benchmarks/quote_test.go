package benchmarks

import "time"

// Quote is the payload of every benchmark: small, and without pointers, so no
// library pays for copying or scanning one.
type Quote struct {
	Symbol [8]byte
	Price  float64
	Qty    float64
	Seq    uint64 // 1, 2, 3... in publish order; receivers use it to check order
}

// Event is what a benchmark publishes on a library that does not stamp events
// itself: the payload with an ID from a counter and the publish time, as
// eventbus.Event carries them.
type Event struct {
	ID    uint64
	Time  time.Time
	Quote Quote
}

// queueSize is the buffer each asynchronous subscriber gets where the library
// lets the caller choose: eventbus's default (eventbus.DefaultQueueSize).
const queueSize = 10000

var symbol = [8]byte{'B', 'T', 'C', 'U', 'S', 'D', 'T'}

// newQuote builds the payload of the seq-th event. Its fields vary with seq
// so that no compiler or cache sees the same value twice in a row.
func newQuote(seq uint64) Quote {
	return Quote{
		Symbol: symbol,
		Price:  100 + float64(seq%1000)*0.01,
		Qty:    float64(seq%10 + 1),
		Seq:    seq,
	}
}

// newEvent builds the seq-th event for libraries without IDs and timestamps
// of their own.
func newEvent(seq uint64) Event {
	return Event{ID: seq, Time: time.Now(), Quote: newQuote(seq)}
}
