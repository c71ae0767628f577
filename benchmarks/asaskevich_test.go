package benchmarks

import (
	"testing"

	evbus "github.com/asaskevich/EventBus"
)

// newAsaskevich returns a bus with one handler per receiver, registered by
// subscribe.
func newAsaskevich(b *testing.B, rs []*receiver, subscribe func(evbus.Bus, func(Event)) error) evbus.Bus {
	bus := evbus.New()
	for _, r := range rs {
		h := func(ev Event) { r.receive(ev.Quote.Seq) }
		if err := subscribe(bus, h); err != nil {
			b.Fatal(err)
		}
	}
	return bus
}

func publishAsaskevich(b *testing.B, bus evbus.Bus) uint64 {
	var seq uint64
	for b.Loop() {
		seq++
		bus.Publish(topic, newEvent(seq))
	}
	return seq
}

func syncAsaskevich(b *testing.B, rs []*receiver) (uint64, func()) {
	bus := newAsaskevich(b, rs, func(bus evbus.Bus, h func(Event)) error {
		return bus.Subscribe(topic, h)
	})
	return publishAsaskevich(b, bus), func() {}
}

// asyncAsaskevich subscribes transactionally: each handler then gets the
// events one at a time, in publish order, like a subscriber of the other
// libraries. Without it, every event would start a goroutine per handler,
// with neither order nor bound.
func asyncAsaskevich(b *testing.B, rs []*receiver) (uint64, func()) {
	bus := newAsaskevich(b, rs, func(bus evbus.Bus, h func(Event)) error {
		return bus.SubscribeAsync(topic, h, true)
	})
	return publishAsaskevich(b, bus), bus.WaitAsync
}
