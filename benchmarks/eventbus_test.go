package benchmarks

import (
	"context"
	"testing"

	"github.com/quantumtrader/eventbus"
)

// newEventbus returns a bus with a quote topic and one subscription per
// receiver, made with opts, and the function that closes the bus.
func newEventbus(b *testing.B, rs []*receiver, opts ...eventbus.SubOption) (*eventbus.Topic[Quote], func()) {
	bus, err := eventbus.New()
	if err != nil {
		b.Fatal(err)
	}
	t := eventbus.MustTopic[Quote](bus, topic)
	for _, r := range rs {
		h := func(_ context.Context, ev eventbus.Event[Quote]) error {
			r.receive(ev.Payload.Seq)
			return nil
		}
		if _, err := t.Subscribe(h, opts...); err != nil {
			b.Fatal(err)
		}
	}
	return t, func() {
		if err := bus.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// publishEventbus publishes in the b.Loop loop. The bus stamps the ID and
// time of each event itself, so only the payload is built here.
func publishEventbus(b *testing.B, t *eventbus.Topic[Quote]) uint64 {
	ctx := context.Background()
	var seq uint64
	for b.Loop() {
		seq++
		if err := t.Publish(ctx, newQuote(seq)); err != nil {
			b.Fatal(err)
		}
	}
	return seq
}

func syncEventbus(b *testing.B, rs []*receiver) (uint64, func()) {
	t, stop := newEventbus(b, rs, eventbus.Sync())
	return publishEventbus(b, t), stop
}

func asyncEventbus(b *testing.B, rs []*receiver) (uint64, func()) {
	t, stop := newEventbus(b, rs)
	return publishEventbus(b, t), stop
}
