package eventbusotel

import "errors"

// ErrNilTopic is returned by Publish and PublishEvent for a nil topic;
// nothing is published and no span is started.
var ErrNilTopic = errors.New("eventbusotel: nil topic")
