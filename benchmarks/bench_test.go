package benchmarks

import (
	"fmt"
	"testing"
)

// library is one contestant. A nil scenario is one the library cannot run;
// README.md says why.
type library struct {
	name  string
	sync  scenario // Publish runs every handler inline before it returns
	async scenario // Publish queues; each subscriber handles on its own goroutine
	// ordered says the library promises each async subscriber the events in
	// publish order; the benchmark then fails if one arrives out of order.
	ordered bool
}

// libraries lists plain Go first: it is the floor every library is compared
// with, and benchstat -col /lib takes the first column as the base. Those
// with both modes come before those with only one, so that the libraries
// appear in the same order in every table.
var libraries = []library{
	{name: "plain", sync: syncPlain, async: asyncPlain, ordered: true},
	{name: "eventbus", sync: syncEventbus, async: asyncEventbus, ordered: true},
	{name: "asaskevich", sync: syncAsaskevich, async: asyncAsaskevich, ordered: true},
	{name: "watermill", async: asyncWatermill},
	{name: "cskr", async: asyncCskr, ordered: true},
}

// topic is the topic name used by libraries that address subscribers by one.
const topic = "market.quote"

// BenchmarkSync publishes to 1 and 10 subscribers whose handlers run inline,
// in the publisher's goroutine, before Publish returns.
func BenchmarkSync(b *testing.B) {
	for _, lib := range libraries {
		if lib.sync == nil {
			continue
		}
		for _, subs := range []int{1, 10} {
			b.Run(fmt.Sprintf("lib=%s/subs=%d", lib.name, subs), func(b *testing.B) {
				runSync(b, subs, lib.sync)
			})
		}
	}
}

// BenchmarkAsync publishes b.N events to 1 and 4 subscribers, each handling
// them on a goroutine of its own, and stops the clock when every subscriber
// has handled every event.
func BenchmarkAsync(b *testing.B) {
	for _, lib := range libraries {
		for _, subs := range []int{1, 4} {
			b.Run(fmt.Sprintf("lib=%s/subs=%d", lib.name, subs), func(b *testing.B) {
				runAsync(b, subs, lib.ordered, lib.async)
			})
		}
	}
}
