package eventbus

import (
	"context"
	"time"
)

// DeadLetterTopic is the topic of DeadLetters.
const DeadLetterTopic = "eventbus.dead_letter"

// DeadLetter describes an event a subscription failed to handle in every
// attempt Retry allowed. The bus publishes it on DeadLetters(bus) as an
// Event[DeadLetter], so failures can be inspected, alerted on or replayed.
// A failure while handling a dead letter is logged but never dead-lettered
// again, so there are no loops.
type DeadLetter struct {
	Topic      string            `json:"topic"`      // topic of the original event
	EventID    ID                `json:"event_id"`   // ID of the original event
	Time       time.Time         `json:"time"`       // publish time of the original event
	Subscriber string            `json:"subscriber"` // name of the subscription that failed
	Attempts   int               `json:"attempts"`   // handler calls made
	Error      string            `json:"error"`      // the last attempt's error
	Payload    any               `json:"payload"`    // the original payload: its typed value in memory; over a transport, as the codec decodes it into an any (with JSON, maps, slices and float64s)
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// DeadLetters returns the topic on which b publishes a DeadLetter for every
// delivery that failed its last attempt. Subscribe to it like any topic;
// SubscribeAll subscriptions see dead letters too.
func DeadLetters(b *Bus) *Topic[DeadLetter] {
	return MustTopic[DeadLetter](b, DeadLetterTopic)
}

// publishDeadLetter publishes dl even while Close drains the bus: dead
// letters come from deliveries of events accepted before Close, and Close
// keeps the dead-letter subscriptions running until the others are done.
func (b *Bus) publishDeadLetter(ctx context.Context, dl DeadLetter) error {
	t, err := NewTopic[DeadLetter](b, DeadLetterTopic)
	if err != nil {
		return err
	}
	ev := Event[DeadLetter]{Payload: dl}
	return t.publish(ctx, &ev, true)
}
