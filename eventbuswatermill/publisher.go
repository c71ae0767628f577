package eventbuswatermill

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/quantumtrader/eventbus"
)

// Publisher is a Watermill message.Publisher that publishes on an
// eventbus.Bus. It is safe for concurrent use.
type Publisher struct {
	bus    *eventbus.Bus
	closed atomic.Bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher that publishes on bus. The bus stays the
// caller's: closing the Publisher does not close it. bus must not be nil.
func NewPublisher(bus *eventbus.Bus) (*Publisher, error) {
	if bus == nil {
		return nil, fmt.Errorf("eventbuswatermill: NewPublisher(nil): %w", eventbus.ErrInvalidOption)
	}
	return &Publisher{bus: bus}, nil
}

// Publish publishes messages, in order, on the bus topic named topic, each
// as an event whose payload is its UUID and Payload and whose Metadata is
// its Metadata (see Message). Each publish is Topic.PublishEvent with the
// message's Context: it returns once the bus has accepted the event (in
// memory, queued for every subscription; on a transport, stored by the
// broker), and blocks while a subscription's buffer is full, until the
// message's Context ends. It stops at the first message that fails and
// returns its error: the messages before it were published.
//
// A topic that is not a valid bus topic name is an error wrapping
// eventbus.ErrInvalidTopic; after Close, or once the bus is closed, an
// error wrapping eventbus.ErrClosed.
func (p *Publisher) Publish(topicName string, messages ...*message.Message) error {
	if p.closed.Load() {
		return fmt.Errorf("eventbuswatermill: publisher closed: %w", eventbus.ErrClosed)
	}
	t, err := topic(p.bus, topicName)
	if err != nil {
		return err
	}
	for _, msg := range messages {
		if msg == nil {
			return errors.New("eventbuswatermill: Publish: nil message")
		}
		if err := t.PublishEvent(msg.Context(), toEvent(msg)); err != nil {
			return fmt.Errorf("eventbuswatermill: publishing message %s: %w", msg.UUID, err)
		}
	}
	return nil
}

// Close makes later calls of Publish fail; publishes under way finish. It
// does not close the bus. Calling it again does nothing, and returns nil.
func (p *Publisher) Close() error {
	p.closed.Store(true)
	return nil
}
