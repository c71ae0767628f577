package eventbuswatermill

import (
	"bytes"
	"context"
	"fmt"
	"maps"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/quantumtrader/eventbus"
)

// Message is the payload of the bus topics that Watermill messages travel
// on: a Watermill topic "orders.created" is the bus topic of that name with
// payload type Message. The message's Metadata is the event's Metadata.
// Typed eventbus code can take part with eventbus.NewTopic[Message].
//
// Over a transport, the bus's codec encodes it; with the default JSON
// codec Payload is base64 text.
type Message struct {
	UUID    string // the Watermill message UUID, as given
	Payload []byte // the Watermill message payload
}

// topic returns the bus topic named name, with a clear error for a name
// that is not a valid bus topic (errors.Is eventbus.ErrInvalidTopic) or
// that already carries another payload type (eventbus.ErrTopicType).
func topic(bus *eventbus.Bus, name string) (*eventbus.Topic[Message], error) {
	t, err := eventbus.NewTopic[Message](bus, name)
	if err != nil {
		return nil, fmt.Errorf("eventbuswatermill: Watermill topic %q: %w", name, err)
	}
	return t, nil
}

// toEvent maps a Watermill message to an event. The payload and the
// metadata are copied: the bus may hand them to many subscribers, and the
// publisher may reuse its message.
func toEvent(msg *message.Message) eventbus.Event[Message] {
	ev := eventbus.Event[Message]{Payload: Message{UUID: msg.UUID, Payload: bytes.Clone(msg.Payload)}}
	if len(msg.Metadata) > 0 {
		ev.Metadata = maps.Clone(map[string]string(msg.Metadata))
	}
	return ev
}

// toMessage maps an event to a new Watermill message whose context derives
// from sub, Subscribe's ctx, and also has the values of handler, the ctx
// the bus gave the handler; cancel ends that context. The payload is
// copied, so that a consumer that changes it harms no other subscriber of
// the event.
func toMessage(sub, handler context.Context, ev *eventbus.Event[Message]) (msg *message.Message, cancel context.CancelFunc) {
	msg = message.NewMessage(ev.Payload.UUID, bytes.Clone(ev.Payload.Payload))
	maps.Copy(msg.Metadata, ev.Metadata)
	ctx, cancel := context.WithCancel(handlerValues{Context: sub, handler: handler})
	msg.SetContext(ctx)
	return msg, cancel
}

// handlerValues is Subscribe's ctx with, behind its own values, those of
// the bus's handler ctx. The bus marks that ctx with the delivery under
// way, so a publish made with the message's Context from the consumer of
// a full subscription that only this delivery could drain fails with
// eventbus.ErrQueueFull rather than waiting for ever.
type handlerValues struct {
	context.Context
	handler context.Context
}

func (c handlerValues) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.handler.Value(key)
}
