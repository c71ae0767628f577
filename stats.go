package eventbus

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quantumtrader/eventbus/internal/hist"
)

// Counts are the delivery counters that Stats, TopicStats and
// SubscriptionStats share: for a subscription its own, for a topic the sum
// over its subscriptions (past ones included), for the bus the sum over
// every topic and SubscribeAll subscription.
type Counts struct {
	Dispatched   uint64 // deliveries begun: one per event and subscription that took it
	Delivered    uint64 // deliveries whose handler returned nil (after retries, if any)
	Errors       uint64 // handler calls that returned an error or panicked
	Panics       uint64 // handler calls that panicked (also counted in Errors)
	Retries      uint64 // handler calls made again after a failure (see Retry)
	Dropped      uint64 // deliveries a DropNewest or DropOldest policy discarded
	DeadLettered uint64 // deliveries given up after their last attempt and published as a DeadLetter
	Undelivered  uint64 // deliveries abandoned because Close's ctx ended first
}

// Stats is a snapshot of a Bus's counters, summed over every topic and
// subscription, including subscriptions that have since unsubscribed. It
// covers the counters of the Python bus this library replaces (published,
// dispatched, errors, queue_size, handler_types, total_handlers) and more.
type Stats struct {
	Published     uint64 // events accepted by Publish, PublishEvent and PublishWait
	NoSubscribers uint64 // events published while the topic had no subscription at all
	Counts
	PublishFailed uint64 // events Publish accepted that a transport's broker then did not store (see AsyncPublisher)
	QueueSize     int    // events waiting in subscription buffers now
	HandlerTypes  int    // topics that have at least one subscription of their own
	TotalHandlers int    // live subscriptions, SubscribeAll ones included
}

// TopicStats is a snapshot of one topic's counters; its Subscriptions are the
// live subscriptions of the topic (SubscribeAll subscriptions are not listed
// per topic: see Subscription.Stats). The delivery counters and latencies
// cover the topic's subscriptions, past ones included.
type TopicStats struct {
	Name          string
	Type          string // the Go payload type, e.g. "eventbus.PolicyUpdated"
	Published     uint64
	NoSubscribers uint64
	Counts
	QueueSize     int
	HighWater     int           // the largest HighWater of its subscriptions
	LatencyP50    time.Duration // handler latency over all its subscriptions
	LatencyP99    time.Duration
	Subscriptions []SubscriptionStats
}

// SubscriptionStats is a snapshot of one subscription's counters. Handler
// latency is sampled into a fixed histogram whose quantiles are within
// 12.5% of the true value: the first 16 calls, then one in 256, are timed;
// for Sync handlers, those of the topic's first 16 publishes, then one
// handler of every 256th publish, in turn. A Sync call is counted as it
// returns.
type SubscriptionStats struct {
	Name        string
	Topic       string // the topic name, or "*" for SubscribeAll
	Where       string // file:line of the Subscribe call
	Sync        bool
	Concurrency int
	Policy      FullPolicy
	Counts
	QueueLen   int // events waiting now
	QueueCap   int // capacity of the buffer (summed over partitions); 0 for Sync
	HighWater  int // the most events that have waited at once (summed over partitions)
	LatencyP50 time.Duration
	LatencyP99 time.Duration
}

// counters are a subscription's counts of rarer things, each incremented
// with an atomic add. Dispatched and delivered come from elsewhere and are
// unused here, except on a transport: the workers' own counts
// (asynchronous), or Subscription.calls (Sync).
type counters struct {
	dispatched, delivered, errors, panics, retries, dropped, deadLettered, undelivered atomic.Uint64
}

func (c *counters) load() Counts {
	return Counts{
		Dispatched:   c.dispatched.Load(),
		Delivered:    c.delivered.Load(),
		Errors:       c.errors.Load(),
		Panics:       c.panics.Load(),
		Retries:      c.retries.Load(),
		Dropped:      c.dropped.Load(),
		DeadLettered: c.deadLettered.Load(),
		Undelivered:  c.undelivered.Load(),
	}
}

// add adds the non-zero counts of d.
func (c *counters) add(d Counts) {
	for _, f := range [...]struct {
		c *atomic.Uint64
		n uint64
	}{
		{&c.dispatched, d.Dispatched}, {&c.delivered, d.Delivered}, {&c.errors, d.Errors}, {&c.panics, d.Panics},
		{&c.retries, d.Retries}, {&c.dropped, d.Dropped}, {&c.deadLettered, d.DeadLettered}, {&c.undelivered, d.Undelivered},
	} {
		if f.n != 0 {
			f.c.Add(f.n)
		}
	}
}

// minus returns t less u, counter by counter.
func (t Counts) minus(u Counts) Counts {
	return Counts{
		Dispatched: t.Dispatched - u.Dispatched, Delivered: t.Delivered - u.Delivered,
		Errors: t.Errors - u.Errors, Panics: t.Panics - u.Panics, Retries: t.Retries - u.Retries,
		Dropped: t.Dropped - u.Dropped, DeadLettered: t.DeadLettered - u.DeadLettered,
		Undelivered: t.Undelivered - u.Undelivered,
	}
}

func (t *Counts) add(u Counts) {
	t.Dispatched += u.Dispatched
	t.Delivered += u.Delivered
	t.Errors += u.Errors
	t.Panics += u.Panics
	t.Retries += u.Retries
	t.Dropped += u.Dropped
	t.DeadLettered += u.DeadLettered
	t.Undelivered += u.Undelivered
}

// retiredStats hold what the unsubscribed subscriptions of a topic counted:
// the folded sum, and those still finishing a delivery.
type retiredStats struct {
	mu       sync.Mutex
	sum      Counts
	latency  hist.Snapshot
	retiring map[*Subscription]struct{}
}

// load returns the retired counts and latencies, the retiring included,
// and, still under r.mu, calls each with every live subscription, adding
// the counts of those not retiring. Unsubscribe moves a subscription from
// live to retiring under r.mu, so each is counted exactly once and the sums
// never go down.
func (r *retiredStats) load(each func(func(*Subscription)), live func(*Subscription) (Counts, hist.Snapshot)) (Counts, hist.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, lat := r.sum, r.latency
	for s := range r.retiring {
		t.add(s.load())
		lat.Add(s.latency.Snapshot())
	}
	each(func(s *Subscription) {
		st, sl := live(s)
		if !s.retiring {
			t.add(st)
			lat.Add(sl)
		}
	})
	return t, lat
}

// Topics returns a snapshot of every topic's statistics, sorted by name.
func (b *Bus) Topics() []TopicStats {
	topics := b.topicList()
	out := make([]TopicStats, 0, len(topics))
	for _, t := range topics {
		out = append(out, t.Stats())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stats returns a snapshot of the bus's counters. Each counter is read
// atomically, but not all at the same instant.
func (b *Bus) Stats() Stats {
	var st Stats
	var sum Counts
	for _, t := range b.topicList() { // unsorted: the sums do not care
		ts := t.Stats()
		st.Published += ts.Published
		st.NoSubscribers += ts.NoSubscribers
		st.QueueSize += ts.QueueSize
		sum.add(ts.Counts)
		if len(ts.Subscriptions) > 0 {
			st.HandlerTypes++
		}
		st.TotalHandlers += len(ts.Subscriptions)
	}
	all, _ := b.retAll.load(b.all.Load().each, func(s *Subscription) (Counts, hist.Snapshot) {
		ss, sl := s.stats()
		st.QueueSize += ss.QueueLen
		st.TotalHandlers++
		return ss.Counts, sl
	})
	sum.add(all)
	st.Counts = sum
	st.PublishFailed = b.failedPublishes.Load()
	return st
}
