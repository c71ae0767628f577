package natsbus

import (
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
)

// WrapIterator makes the receiver r, from a transport of this package,
// read its messages through wrap's result from now on, so that a test can
// make jetstream's iterator misbehave as it does under load. It waits for
// a Next in progress to return.
func WrapIterator(r eventbus.Receiver, wrap func(jetstream.MessagesContext) jetstream.MessagesContext) {
	rr := r.(*receiver)
	rr.sem <- struct{}{}
	defer func() { <-rr.sem }()
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.iter = wrap(rr.iter)
}
