package eventbus

import (
	"context"
	"log/slog"
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

// deadLetter publishes a DeadLetter for an event whose attempts all failed.
func (s *subscriber[T]) deadLetter(ctx context.Context, ev *Event[T], he *HandlerError) {
	if ev.Topic == DeadLetterTopic {
		s.bus.logger.LogAttrs(ctx, slog.LevelError, "eventbus: dead-letter handler failed; the dead letter is not dead-lettered again",
			slog.String("subscriber", s.name), slog.String("event_id", ev.ID.String()), slog.Any("error", he.Err))
		return
	}
	if err := s.sendLetter(s.letter(ev, he)); err != nil {
		s.bus.logger.LogAttrs(ctx, slog.LevelError, "eventbus: dead letter lost",
			slog.String("topic", ev.Topic), slog.String("event_id", ev.ID.String()),
			slog.String("subscriber", s.name), slog.Any("error", err))
	}
}

// letter is the dead letter of ev, whose last attempt failed with he.
func (s *subscriber[T]) letter(ev *Event[T], he *HandlerError) *DeadLetter {
	return &DeadLetter{
		Topic: ev.Topic, EventID: ev.ID, Time: ev.Time, Subscriber: s.name,
		Attempts: he.Attempt, Error: he.Err.Error(), Payload: ev.Payload, Metadata: ev.Metadata,
	}
}

// sendLetter publishes dl and counts it.
func (s *subscriber[T]) sendLetter(dl *DeadLetter) error {
	if err := s.bus.publishDeadLetter(s.bus.handlerCtx, *dl); err != nil {
		return err
	}
	s.count(Counts{DeadLettered: 1})
	return nil
}
