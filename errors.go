package eventbus

import (
	"errors"
	"fmt"
)

// The sentinel errors of the package. Test for them with errors.Is: the
// errors returned wrap them with the topic or subscription concerned.
var (
	// ErrClosed is returned by Publish, PublishWait and Subscribe once Close
	// has begun.
	ErrClosed = errors.New("eventbus: bus closed")
	// ErrInvalidTopic is returned for a topic name that is not dot-separated
	// tokens of [A-Za-z0-9_-], 1 to 255 bytes in all.
	ErrInvalidTopic = errors.New("eventbus: invalid topic name")
	// ErrTopicType is returned by NewTopic when the name is already
	// registered with another payload type.
	ErrTopicType = errors.New("eventbus: topic registered with another payload type")
	// ErrQueueFull is returned by Publish when a subscription with OnFull(Reject)
	// has no room, and when waiting for room would deadlock (see ErrDeadlock).
	ErrQueueFull = errors.New("eventbus: queue full")
	// ErrDeadlock is returned, together with ErrQueueFull, when a handler
	// publishes into a full queue that only that same handler (or a cycle of
	// handlers waiting on each other) could ever drain, and by PublishWait
	// called from a handler that would have to wait for itself.
	ErrDeadlock = errors.New("eventbus: would deadlock")
	// ErrNilHandler is returned by Subscribe and SubscribeAll for a nil handler.
	ErrNilHandler = errors.New("eventbus: nil handler")
	// ErrInvalidOption is returned by New and Subscribe for an option with an
	// invalid value, such as a negative queue size.
	ErrInvalidOption = errors.New("eventbus: invalid option")
)

// ValidationError is returned by Publish when the payload's Validate method
// fails. Nothing was delivered.
type ValidationError struct {
	Topic string // the topic published to
	Err   error  // what Validate returned
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("eventbus: invalid %s payload: %v", e.Topic, e.Err)
}

func (e *ValidationError) Unwrap() error { return e.Err }

// HandlerError describes one failed handler call: an error returned by the
// handler, or a panic the bus recovered. The bus passes it to the function
// given to WithErrorHandler, logs it, and PublishWait returns it. It also
// reports an event that a Transport publishing asynchronously accepted and
// its broker did not store: then Subscriber is empty and Attempt 0.
type HandlerError struct {
	Topic      string // topic of the event
	EventID    ID     // ID of the event
	Subscriber string // name of the subscription (see Name); empty for a failed publish
	Attempt    int    // 1 for the first call; 0 for a failed publish
	Err        error  // the handler's error, or one describing the panic
	Panic      bool   // the handler panicked; Stack holds where
	Stack      []byte // the panicking goroutine's stack; nil unless Panic
}

func (e *HandlerError) Error() string {
	if e.Subscriber == "" && e.Attempt == 0 {
		return fmt.Sprintf("eventbus: the broker did not store %s event %s: %v", e.Topic, e.EventID, e.Err)
	}
	what := "failed"
	if e.Panic {
		what = "panicked"
	}
	return fmt.Sprintf("eventbus: handler %s %s on %s event %s (attempt %d): %v",
		e.Subscriber, what, e.Topic, e.EventID, e.Attempt, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

// panicError is the Err of a HandlerError for a recovered panic.
type panicError struct{ value any }

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// Unwrap lets errors.Is see through a panic whose value was an error.
func (p *panicError) Unwrap() error {
	err, _ := p.value.(error)
	return err
}
