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

// fields lists the counters in the order of Counts' fields, so that the
// functions below name each of them once.
func (c *counters) fields() [8]*atomic.Uint64 {
	return [...]*atomic.Uint64{&c.dispatched, &c.delivered, &c.errors, &c.panics, &c.retries, &c.dropped, &c.deadLettered, &c.undelivered}
}

// fields lists t's counts, in the order of counters.fields.
func (t *Counts) fields() [8]*uint64 {
	return [...]*uint64{&t.Dispatched, &t.Delivered, &t.Errors, &t.Panics, &t.Retries, &t.Dropped, &t.DeadLettered, &t.Undelivered}
}

func (c *counters) load() (t Counts) {
	to := t.fields()
	for i, f := range c.fields() {
		*to[i] = f.Load()
	}
	return t
}

// add adds the non-zero counts of d.
func (c *counters) add(d Counts) {
	from := d.fields()
	for i, f := range c.fields() {
		if n := *from[i]; n != 0 {
			f.Add(n)
		}
	}
}

// Add adds u's counts to t's, as Stats sums those of topics and
// subscriptions.
func (t *Counts) Add(u Counts) {
	to := t.fields()
	for i, f := range u.fields() {
		*to[i] += *f
	}
}

// minus returns t less u, count by count.
func (t Counts) minus(u Counts) Counts {
	to := t.fields()
	for i, f := range u.fields() {
		*to[i] -= *f
	}
	return t
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
		t.Add(s.load())
		lat.Add(s.latency.Snapshot())
	}
	each(func(s *Subscription) {
		st, sl := live(s)
		if !s.retiring {
			t.Add(st)
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
		sum.Add(ts.Counts)
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
	sum.Add(all)
	st.Counts = sum
	st.PublishFailed = b.failedPublishes.Load()
	return st
}
