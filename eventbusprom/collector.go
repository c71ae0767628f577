// Package eventbusprom exports the statistics of an eventbus.Bus to
// Prometheus: a Collector reads Bus.Topics and Bus.Stats at each scrape
// and turns them into counters and gauges, per topic, per subscription and
// for the whole bus.
//
// The metrics are those the bus counts, no more (with the default
// namespace; labels in braces):
//
//	eventbus_events_published_total{topic}                                      counter
//	eventbus_events_no_subscribers_total{topic}                                 counter
//	eventbus_dispatched_total{topic}                                            counter  deliveries begun
//	eventbus_delivered_total{topic}                                             counter  the handler returned nil
//	eventbus_handler_errors_total{topic}                                        counter  errors and panics
//	eventbus_handler_panics_total{topic}                                        counter
//	eventbus_handler_retries_total{topic}                                       counter
//	eventbus_dropped_total{topic}                                               counter  OnFull(DropNewest|DropOldest)
//	eventbus_dead_lettered_total{topic}                                         counter
//	eventbus_undelivered_total{topic}                                           counter  abandoned by Close
//	eventbus_queue_length{topic}                                                gauge
//	eventbus_queue_high_water{topic}                                            gauge
//	eventbus_handler_latency_seconds{topic,quantile}                            gauge    quantile 0.5 and 0.99
//	eventbus_subscription_<delivery>_total{topic,subscription}                  counter
//	eventbus_subscription_queue_length{topic,subscription}                      gauge
//	eventbus_subscription_queue_capacity{topic,subscription}                    gauge    0 for Sync
//	eventbus_subscription_queue_high_water{topic,subscription}                  gauge
//	eventbus_subscription_handler_latency_seconds{topic,subscription,quantile}  gauge
//	eventbus_bus_<delivery>_total                                               counter
//	eventbus_bus_queue_length                                                   gauge
//	eventbus_bus_subscriptions                                                  gauge
//	eventbus_bus_topics_with_subscribers                                        gauge
//
// where <delivery> is each of the eight delivery counters of a topic:
// dispatched, delivered, handler_errors, handler_panics, handler_retries,
// dropped, dead_lettered and undelivered.
//
// The per-topic delivery counters cover the topic's subscriptions, past
// ones included, so they never go down; the per-subscription series cover
// the live subscriptions of each topic. Subscriptions made with
// SubscribeAll belong to no topic: they are counted in the eventbus_bus_
// series only, which is why those exist (published and no-subscribers
// events have no bus-wide series: the per-topic ones add up to them).
//
// Handler latency is what the bus samples (see eventbus.SubscriptionStats):
// quantiles 0.5 and 0.99 over the life of the subscription, within 12.5%,
// exported as gauges because the bus keeps no count or sum for a
// Prometheus summary. They are absent until a handler call has been timed.
package eventbusprom

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantumtrader/eventbus"
)

// The labels the Collector sets itself.
const (
	labelTopic        = "topic"
	labelSubscription = "subscription"
	labelQuantile     = "quantile"
)

// Collector is a prometheus.Collector of one Bus's statistics. It holds no
// state beyond its descriptions: each Collect takes a fresh snapshot of the
// bus, so it never reports stale values and costs nothing between scrapes.
// It is safe for concurrent use, and keeps working after the bus is closed
// (the counters then stay at their final values).
type Collector struct {
	bus *eventbus.Bus

	topic        []metric[eventbus.TopicStats]
	topicLatency *prometheus.Desc
	sub          []metric[eventbus.SubscriptionStats]
	subLatency   *prometheus.Desc
	all          []metric[eventbus.Stats]
}

// metric is one exported series of a statistics snapshot of type S.
type metric[S any] struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*S) float64
}

// spec is a metric before New names it.
type spec[S any] struct {
	name, help string
	kind       prometheus.ValueType
	value      func(*S) float64
}

// deliverySpecs returns the specs of the delivery counters of S, whose
// help ends with scope.
func deliverySpecs[S any](get func(*S) eventbus.Counts, scope string) []spec[S] {
	counter := func(name, help string, f func(eventbus.Counts) uint64) spec[S] {
		return spec[S]{name, help + " " + scope, prometheus.CounterValue, func(s *S) float64 { return float64(f(get(s))) }}
	}
	return []spec[S]{
		counter("dispatched_total", "Deliveries begun: one per event and subscription that took it.", func(d eventbus.Counts) uint64 { return d.Dispatched }),
		counter("delivered_total", "Deliveries whose handler returned nil, after retries if any.", func(d eventbus.Counts) uint64 { return d.Delivered }),
		counter("handler_errors_total", "Handler calls that returned an error or panicked.", func(d eventbus.Counts) uint64 { return d.Errors }),
		counter("handler_panics_total", "Handler calls that panicked (also counted as errors).", func(d eventbus.Counts) uint64 { return d.Panics }),
		counter("handler_retries_total", "Handler calls made again after a failure.", func(d eventbus.Counts) uint64 { return d.Retries }),
		counter("dropped_total", "Deliveries a DropNewest or DropOldest policy discarded.", func(d eventbus.Counts) uint64 { return d.Dropped }),
		counter("dead_lettered_total", "Deliveries given up after their last attempt and published as a DeadLetter.", func(d eventbus.Counts) uint64 { return d.DeadLettered }),
		counter("undelivered_total", "Deliveries abandoned because Close's deadline passed first.", func(d eventbus.Counts) uint64 { return d.Undelivered }),
	}
}

func gauge[S any](name, help string, f func(*S) int) spec[S] {
	return spec[S]{name, help, prometheus.GaugeValue, func(s *S) float64 { return float64(f(s)) }}
}

const (
	topicScope = "Per topic, over its subscriptions past and present; SubscribeAll subscriptions are in the eventbus_bus_ series only."
	subScope   = "Per live subscription of a topic; subscriptions of a topic that share a name are summed."
	busScope   = "Over the whole bus, SubscribeAll and past subscriptions included."
)

var topicSpecs = append([]spec[eventbus.TopicStats]{
	{"events_published_total", "Events accepted by Publish, PublishEvent and PublishWait.", prometheus.CounterValue,
		func(t *eventbus.TopicStats) float64 { return float64(t.Published) }},
	{"events_no_subscribers_total", "Events published while the topic had no subscription at all.", prometheus.CounterValue,
		func(t *eventbus.TopicStats) float64 { return float64(t.NoSubscribers) }},
	gauge("queue_length", "Events waiting in the buffers of the topic's subscriptions now.",
		func(t *eventbus.TopicStats) int { return t.QueueSize }),
	gauge("queue_high_water", "The most events that have waited at once in one live subscription's buffer of the topic.",
		func(t *eventbus.TopicStats) int { return t.HighWater }),
}, deliverySpecs(func(t *eventbus.TopicStats) eventbus.Counts { return t.Counts }, topicScope)...)

var subSpecs = append([]spec[eventbus.SubscriptionStats]{
	gauge("queue_length", "Events waiting in the subscription's buffer now; 0 for Sync.",
		func(s *eventbus.SubscriptionStats) int { return s.QueueLen }),
	gauge("queue_capacity", "Capacity of the subscription's buffer, summed over partitions; 0 for Sync.",
		func(s *eventbus.SubscriptionStats) int { return s.QueueCap }),
	gauge("queue_high_water", "The most events that have waited at once in the subscription's buffer, summed over partitions.",
		func(s *eventbus.SubscriptionStats) int { return s.HighWater }),
}, deliverySpecs(func(s *eventbus.SubscriptionStats) eventbus.Counts { return s.Counts }, subScope)...)

var busSpecs = append([]spec[eventbus.Stats]{
	gauge("queue_length", "Events waiting in every subscription's buffer now, SubscribeAll ones included.",
		func(s *eventbus.Stats) int { return s.QueueSize }),
	gauge("subscriptions", "Live subscriptions, SubscribeAll ones included.",
		func(s *eventbus.Stats) int { return s.TotalHandlers }),
	gauge("topics_with_subscribers", "Topics that have at least one subscription of their own.",
		func(s *eventbus.Stats) int { return s.HandlerTypes }),
}, deliverySpecs(func(s *eventbus.Stats) eventbus.Counts { return s.Counts }, busScope)...)

const latencyHelp = "Handler latency quantile over the life of the subscription, sampled (the first 16 calls, then one in 256), within 12.5%."

// New returns a Collector of bus's statistics, to register with a
// prometheus.Registerer. The options name the metrics: WithNamespace and
// WithConstLabels. An invalid option is an error wrapping
// ErrInvalidOption; a nil bus is ErrNilBus.
//
// Registering the collectors of two buses in one registry needs
// WithConstLabels with a label that tells them apart; otherwise the second
// Register fails with a prometheus.AlreadyRegisteredError.
func New(bus *eventbus.Bus, opts ...Option) (*Collector, error) {
	if bus == nil {
		return nil, ErrNilBus
	}
	cfg := config{namespace: DefaultNamespace}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	c := &Collector{bus: bus}
	desc := func(subsystem, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(cfg.namespace, subsystem, name), help, labels, cfg.constLabels)
	}
	c.topic = build(topicSpecs, func(s spec[eventbus.TopicStats]) *prometheus.Desc {
		return desc("", s.name, s.help, labelTopic)
	})
	c.topicLatency = desc("", "handler_latency_seconds", latencyHelp+" "+topicScope, labelTopic, labelQuantile)
	c.sub = build(subSpecs, func(s spec[eventbus.SubscriptionStats]) *prometheus.Desc {
		return desc("subscription", s.name, s.help, labelTopic, labelSubscription)
	})
	c.subLatency = desc("subscription", "handler_latency_seconds", latencyHelp+" "+subScope, labelTopic, labelSubscription, labelQuantile)
	c.all = build(busSpecs, func(s spec[eventbus.Stats]) *prometheus.Desc {
		return desc("bus", s.name, s.help)
	})
	// The options are checked above; this catches what they let through
	// and prometheus still refuses, before Register would.
	var err error
	c.describe(func(d *prometheus.Desc) {
		if err == nil {
			err = d.Err()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	return c, nil
}

func build[S any](specs []spec[S], desc func(spec[S]) *prometheus.Desc) []metric[S] {
	out := make([]metric[S], len(specs))
	for i, s := range specs {
		out[i] = metric[S]{desc(s), s.kind, s.value}
	}
	return out
}

func (c *Collector) describe(f func(*prometheus.Desc)) {
	for _, m := range c.topic {
		f(m.desc)
	}
	f(c.topicLatency)
	for _, m := range c.sub {
		f(m.desc)
	}
	f(c.subLatency)
	for _, m := range c.all {
		f(m.desc)
	}
}

// Describe sends the description of every metric the Collector can
// export, which lets a registry check a second bus's collector for
// clashes at Register. It implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.describe(func(d *prometheus.Desc) { ch <- d })
}

// Collect takes one snapshot of the bus's topics (Bus.Topics) and one of
// its totals (Bus.Stats) and sends their metrics. Its cost grows with the
// number of topics and subscriptions, not of events, and it holds the
// bus's locks only as briefly as those calls do. It implements
// prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.bus.Topics() {
		emit(ch, c.topic, &t, t.Name)
		latency(ch, c.topicLatency, t.LatencyP50, t.LatencyP99, t.Name)
		for _, s := range bySubscription(t.Subscriptions) {
			emit(ch, c.sub, &s, t.Name, s.Name)
			latency(ch, c.subLatency, s.LatencyP50, s.LatencyP99, t.Name, s.Name)
		}
	}
	st := c.bus.Stats()
	emit(ch, c.all, &st)
}

func emit[S any](ch chan<- prometheus.Metric, ms []metric[S], s *S, labels ...string) {
	for _, m := range ms {
		send(ch, m.desc, m.kind, m.value(s), labels...)
	}
}

// latency sends the two quantiles, unless no handler call has been timed:
// the bus reports 0 then, which is no latency at all.
func latency(ch chan<- prometheus.Metric, d *prometheus.Desc, p50, p99 time.Duration, labels ...string) {
	if p99 <= 0 {
		return
	}
	send(ch, d, prometheus.GaugeValue, p50.Seconds(), append(labels, "0.5")...)
	send(ch, d, prometheus.GaugeValue, p99.Seconds(), append(labels, "0.99")...)
}

// send never panics: Collect runs in the registry's goroutines, where a
// panic would end the process.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, kind prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, kind, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

// bySubscription returns subs with one entry per name, in order of first
// appearance: names are not unique (two subscriptions of one handler, or
// of one Name, share it), and Prometheus needs one series per label set.
// Counts, queue lengths, capacities and high-water marks are summed; the
// latency quantiles are the largest of the group's, an upper bound of the
// group's own quantile. Names that are not valid UTF-8 are made so, as
// Prometheus requires of label values.
func bySubscription(subs []eventbus.SubscriptionStats) []eventbus.SubscriptionStats {
	out := make([]eventbus.SubscriptionStats, 0, len(subs))
	at := make(map[string]int, len(subs))
	for _, s := range subs {
		s.Name = strings.ToValidUTF8(s.Name, "\uFFFD")
		i, ok := at[s.Name]
		if !ok {
			at[s.Name] = len(out)
			out = append(out, s)
			continue
		}
		o := &out[i]
		o.Counts.Add(s.Counts)
		o.QueueLen += s.QueueLen
		o.QueueCap += s.QueueCap
		o.HighWater += s.HighWater
		o.LatencyP50 = max(o.LatencyP50, s.LatencyP50)
		o.LatencyP99 = max(o.LatencyP99, s.LatencyP99)
	}
	return out
}
