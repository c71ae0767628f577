package benchmarks

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// Watermill carries []byte payloads with a string UUID, so the event is
// encoded by hand: the ID goes in the UUID and the time and quote, in a
// fixed binary layout (the cheapest codec there is), in the payload.
const watermillPayloadSize = 8 + 8 + 8 + 8 + 8

func encodeWatermill(ev *Event) *message.Message {
	p := make([]byte, 0, watermillPayloadSize)
	p = binary.LittleEndian.AppendUint64(p, uint64(ev.Time.UnixNano()))
	p = append(p, ev.Quote.Symbol[:]...)
	p = binary.LittleEndian.AppendUint64(p, math.Float64bits(ev.Quote.Price))
	p = binary.LittleEndian.AppendUint64(p, math.Float64bits(ev.Quote.Qty))
	p = binary.LittleEndian.AppendUint64(p, ev.Quote.Seq)
	return message.NewMessage(strconv.FormatUint(ev.ID, 10), p)
}

func decodeWatermill(msg *message.Message) (Event, error) {
	p := msg.Payload
	if len(p) != watermillPayloadSize {
		return Event{}, fmt.Errorf("payload of %d bytes, want %d", len(p), watermillPayloadSize)
	}
	id, err := strconv.ParseUint(msg.UUID, 10, 64)
	if err != nil {
		return Event{}, err
	}
	ev := Event{ID: id, Time: time.Unix(0, int64(binary.LittleEndian.Uint64(p)))}
	copy(ev.Quote.Symbol[:], p[8:16])
	ev.Quote.Price = math.Float64frombits(binary.LittleEndian.Uint64(p[16:]))
	ev.Quote.Qty = math.Float64frombits(binary.LittleEndian.Uint64(p[24:]))
	ev.Quote.Seq = binary.LittleEndian.Uint64(p[32:])
	return ev, nil
}

// asyncWatermill uses the GoChannel Pub/Sub as its documentation shows it:
// Subscribe returns a channel per subscriber, drained by a goroutine that
// acks each message. (A message.Router would add its middleware on top.)
// The default Config is kept but for the output buffer, which gets the same
// size as the other libraries' queues.
func asyncWatermill(b *testing.B, rs []*receiver) (uint64, func()) {
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: queueSize}, watermill.NopLogger{})
	var wg sync.WaitGroup
	for _, r := range rs {
		msgs, err := ps.Subscribe(context.Background(), topic)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for msg := range msgs {
				ev, err := decodeWatermill(msg)
				if err != nil {
					panic(err) // a bug in this file; the count check would hide it
				}
				r.receive(ev.Quote.Seq)
				msg.Ack()
			}
		})
	}
	var seq uint64
	for b.Loop() {
		seq++
		ev := newEvent(seq)
		if err := ps.Publish(topic, encodeWatermill(&ev)); err != nil {
			b.Fatal(err)
		}
	}
	return seq, func() {
		if err := ps.Close(); err != nil {
			b.Error(err)
		}
		wg.Wait()
	}
}
