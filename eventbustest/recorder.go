package eventbustest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/quantumtrader/eventbus"
)

// Recorder is a subscription that keeps every event it receives, so that a
// test can wait for events and then inspect them. Make one with Record,
// RecordFunc or RecordAll.
//
// A Recorder is safe for concurrent use. It records each handler call, so an
// event that the bus delivers more than once (a retry) is recorded once per
// attempt. Its Wait methods and AssertPayloads report failures to the test
// given to Record; the Wait methods call t.Fatalf when their deadline passes,
// so, like t.Fatalf itself, they belong in the goroutine running the test.
//
// Recording costs a mutex and an append per event, and every event stays in
// memory until the test ends: a Recorder suits tests, not benchmarks or
// endless streams.
type Recorder[T any] struct {
	t     testing.TB
	topic string // for messages: the topic name, or "*"
	next  eventbus.Handler[T]
	sub   *eventbus.Subscription

	mu     sync.Mutex
	events []eventbus.Event[T] // only ever appended to, so a prefix may be read unlocked
	// arrived is closed, and set to nil, when an event is recorded; a waiter
	// makes it when there is none, so recording costs no allocation while
	// nobody waits.
	arrived chan struct{}
}

// Record subscribes to topic with opts and records every event, until the
// end of the test, when it unsubscribes (through t.Cleanup). It fails the
// test with t.Fatalf if Subscribe fails.
func Record[T any](t testing.TB, topic *eventbus.Topic[T], opts ...eventbus.SubOption) *Recorder[T] {
	t.Helper()
	return RecordFunc(t, topic, nil, opts...)
}

// RecordFunc is Record with a handler of the test's own, h, called with each
// event just after it is recorded; h's error or panic is the subscription's.
// A test uses it to make chosen deliveries fail, for retries and dead
// letters, or block, to hold a subscription busy; a delivery that h holds is
// already visible to Events and the Wait methods. A nil h is Record.
func RecordFunc[T any](t testing.TB, topic *eventbus.Topic[T], h eventbus.Handler[T], opts ...eventbus.SubOption) *Recorder[T] {
	t.Helper()
	r := &Recorder[T]{t: t, topic: topic.Name(), next: h}
	sub, err := topic.Subscribe(r.handle, opts...)
	if err != nil {
		t.Fatalf("eventbustest: Record on %s: %v", topic.Name(), err)
		return nil
	}
	r.sub = sub
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

// RecordAll is Record for every topic of bus, through eventbus.SubscribeAll:
// each recorded event carries its topic's typed payload in Payload.
func RecordAll(t testing.TB, bus *eventbus.Bus, opts ...eventbus.SubOption) *Recorder[any] {
	t.Helper()
	r := &Recorder[any]{t: t, topic: "*"}
	sub, err := eventbus.SubscribeAll(bus, r.handle, opts...)
	if err != nil {
		t.Fatalf("eventbustest: RecordAll: %v", err)
		return nil
	}
	r.sub = sub
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

func (r *Recorder[T]) handle(ctx context.Context, ev eventbus.Event[T]) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	if r.arrived != nil {
		close(r.arrived)
		r.arrived = nil
	}
	r.mu.Unlock()
	if r.next != nil {
		return r.next(ctx, ev)
	}
	return nil
}

// Subscription returns the recorder's subscription, to unsubscribe early or
// read its Stats.
func (r *Recorder[T]) Subscription() *eventbus.Subscription { return r.sub }

// snapshot returns the events recorded so far, capped so that appending to
// the result never touches the recorder's own array, and the channel that
// the next event closes.
func (r *Recorder[T]) snapshot() ([]eventbus.Event[T], <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.arrived == nil {
		r.arrived = make(chan struct{})
	}
	return r.events[:len(r.events):len(r.events)], r.arrived
}

func (r *Recorder[T]) recorded() []eventbus.Event[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[:len(r.events):len(r.events)]
}

// Len returns the number of events recorded so far.
func (r *Recorder[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Events returns a copy of the events recorded so far, in the order the
// handler was called.
func (r *Recorder[T]) Events() []eventbus.Event[T] {
	return slices.Clone(r.recorded())
}

// Payloads returns the payloads of the events recorded so far, in the order
// the handler was called.
func (r *Recorder[T]) Payloads() []T {
	return payloads(r.recorded())
}

func payloads[T any](evs []eventbus.Event[T]) []T {
	out := make([]T, len(evs))
	for i, ev := range evs {
		out[i] = ev.Payload
	}
	return out
}

// WaitN waits until n events have been recorded and returns the first n. If
// they have not all arrived within timeout it fails the test with t.Fatalf,
// listing what did arrive. It wakes as each event is recorded; it never polls.
func (r *Recorder[T]) WaitN(timeout time.Duration, n int) []eventbus.Event[T] {
	r.t.Helper()
	evs, ok := r.wait(timeout, func(evs []eventbus.Event[T]) bool { return len(evs) >= n },
		func() string { return fmt.Sprintf("%d events", n) })
	if !ok {
		return nil
	}
	return slices.Clone(evs[:n])
}

// WaitMatch returns the first recorded event for which match returns true,
// waiting for one to arrive if none has. If none arrives within timeout it
// fails the test with t.Fatalf, listing what did arrive. match is called
// once per event, from the goroutine that called WaitMatch.
func (r *Recorder[T]) WaitMatch(timeout time.Duration, match func(eventbus.Event[T]) bool) eventbus.Event[T] {
	r.t.Helper()
	checked, found := 0, -1
	evs, ok := r.wait(timeout, func(evs []eventbus.Event[T]) bool {
		for ; checked < len(evs); checked++ {
			if match(evs[checked]) {
				found = checked
				return true
			}
		}
		return false
	}, func() string { return "an event that matches" })
	if !ok {
		return eventbus.Event[T]{}
	}
	return evs[found]
}

// wait calls done with the events recorded so far, and again after each new
// event, until it returns true; then it returns those events and true. At
// the deadline it fails the test and returns false. done runs without the
// lock, on an immutable prefix of the recorded events.
func (r *Recorder[T]) wait(timeout time.Duration, done func([]eventbus.Event[T]) bool, what func() string) ([]eventbus.Event[T], bool) {
	r.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		evs, arrived := r.snapshot()
		if done(evs) {
			return evs, true
		}
		select {
		case <-arrived:
		case <-timer.C:
			r.t.Fatalf("eventbustest: waited %v for %s on %s; %s", timeout, what(), r.topic, describe(r.recorded()))
			return nil, false
		}
	}
}

// AssertPayloads compares the payloads recorded so far with want, using
// go-cmp with opts, and fails the test with t.Errorf, showing the diff, if
// they differ; it reports whether they were equal. A nil and an empty slice
// are equal. It does not wait: call it after WaitN, or after the bus's Close
// returned nil (every accepted event has then been handled).
func (r *Recorder[T]) AssertPayloads(want []T, opts ...cmp.Option) bool {
	r.t.Helper()
	got := r.Payloads()
	opts = append([]cmp.Option{cmpopts.EquateEmpty()}, opts...)
	if diff := cmp.Diff(want, got, opts...); diff != "" {
		r.t.Errorf("eventbustest: payloads recorded on %s differ (-want +got):\n%s", r.topic, diff)
		return false
	}
	return true
}

// describe lists recorded events for a failure message, eliding the middle
// of a long list.
func describe[T any](evs []eventbus.Event[T]) string {
	const ends = 10
	if len(evs) == 0 {
		return "got none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "got %d:", len(evs))
	for i, ev := range evs {
		if len(evs) > 2*ends && i == ends {
			fmt.Fprintf(&b, "\n\t... %d more ...", len(evs)-2*ends)
		}
		if len(evs) > 2*ends && i >= ends && i < len(evs)-ends {
			continue
		}
		fmt.Fprintf(&b, "\n\t%s %s %+v", ev.Topic, ev.ID, ev.Payload)
	}
	return b.String()
}
