package eventbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The typed layer over a Transport: a topic encodes what it publishes into
// an Envelope (remote_publish.go), and a subscription pulls Deliveries
// from a Receiver per topic (this file), decodes them, runs the handler
// and settles each one with the broker (remote_deliver.go). The in-memory
// engine (deliver.go) is not involved.

// listenNew gives every SubscribeAll subscription on the transport a
// receiver of a topic being created, or none if any fails. The caller holds
// b.mu.
func (b *Bus) listenNew(topic string, decode func(*Envelope) (Event[any], error)) error {
	if b.closed.Load() {
		return nil // Close is stopping the subscriptions
	}
	recvs := make([]Receiver, 0, len(b.remoteAll))
	for _, s := range b.remoteAll {
		recv, err := s.open(topic)
		if err != nil {
			for _, r := range recvs {
				_ = r.Stop(context.Background()) // never handed out: nothing to lose
			}
			return err
		}
		recvs = append(recvs, recv)
	}
	for i, s := range b.remoteAll {
		s.serve(recvs[i], decode)
	}
	return nil
}

// remoteState is the part of a subscription that lives on a Transport: a
// receiver per topic (one, or one per topic for SubscribeAll), and what its
// keeper watches.
type remoteState struct {
	opts SubscribeOptions // what every receiver asks for; Topic is set per receiver

	mu      sync.Mutex
	recvs   []Receiver
	calls   []*atomic.Pointer[remoteCall] // one per worker: the handler call under way
	stopped bool
	stop    chan struct{} // closed with stopped set: the keeper ends
}

// remoteCall is a handler call under way, for the keeper. The worker sets d
// and start; the other fields are the keeper's alone.
type remoteCall struct {
	d        Delivery
	start    time.Time
	nudged   time.Time // when the broker last heard the handler still works
	reported bool      // logged as stalled
}

func newRemoteState(b *Bus, cfg subConfig) *remoteState {
	opts := SubscribeOptions{Group: cfg.group, Replay: cfg.replay, MaxInFlight: cfg.concurrency, AckWait: cmp.Or(cfg.ackWait, b.cfg.ackWait)}
	if cfg.group == "" {
		opts.Name = cfg.name // empty: an ephemeral consumer
	}
	return &remoteState{opts: opts, stop: make(chan struct{})}
}

// open starts a consumer of topic for the subscription.
func (s *subscriber[T]) open(topic string) (Receiver, error) {
	opts := s.remote.opts
	opts.Topic = topic
	recv, err := s.bus.cfg.transport.Subscribe(s.bus.handlerCtx, opts)
	if err != nil {
		return nil, fmt.Errorf("eventbus: %s: receiving %s: %w", s.Subscription, topic, err)
	}
	return recv, nil
}

// serve starts the workers that handle what recv receives. If the
// subscription has stopped meanwhile, it stops recv instead.
func (s *subscriber[T]) serve(recv Receiver, decode func(*Envelope) (Event[T], error)) {
	r := s.remote
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		_ = recv.Stop(context.Background()) // never handed out: nothing to lose
		return
	}
	r.recvs = append(r.recvs, recv)
	for range s.concurrency {
		call := new(atomic.Pointer[remoteCall])
		r.calls = append(r.calls, call)
		// The keeper holds running above zero until stopped is set, so
		// this never revives a subscription whose done is closed.
		s.running.Add(1)
		s.bus.workers.Go(func() error {
			defer s.exit(nil)
			s.receive(recv, decode, call)
			return nil
		})
	}
}

// listen opens a receiver of topic and serves it.
func (s *subscriber[T]) listen(topic string, decode func(*Envelope) (Event[T], error)) error {
	recv, err := s.open(topic)
	if err != nil {
		return err
	}
	s.serve(recv, decode)
	return nil
}

// startKeeper runs, for the life of the subscription, the goroutine that
// watches its handler calls: it tells the broker that a call running for a
// third of the ack wait still works, so the event is not handed to another
// consumer meanwhile, and logs a call that runs past the stall timeout,
// once, as the stall watcher does for the in-memory engine.
func (s *subscriber[T]) startKeeper() {
	r, ackWait, stallAfter := s.remote, s.remote.opts.AckWait, s.bus.cfg.stallTimeout
	nudgeAfter := ackWait / 3
	s.running.Add(1)
	s.bus.workers.Go(func() error {
		defer s.exit(nil)
		// Ticking twice per nudge, the broker hears from a running handler
		// at least every half ack wait.
		tick := time.NewTicker(max(min(nudgeAfter/2, stallAfter/4), time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return nil
			case now := <-tick.C:
				r.mu.Lock()
				calls := slices.Clone(r.calls)
				r.mu.Unlock()
				for _, slot := range calls {
					c := slot.Load()
					if c == nil {
						continue
					}
					if now.Sub(c.nudged) >= nudgeAfter {
						c.nudged = now
						// A lost one only means an early redelivery, which
						// at-least-once delivery allows.
						_ = c.d.InProgress(s.bus.handlerCtx)
					}
					if !c.reported && now.Sub(c.start) >= stallAfter {
						c.reported = true
						s.bus.logger.LogAttrs(context.Background(), slog.LevelWarn, "eventbus: handler stalled",
							slog.String("subscriber", s.name), slog.String("topic", c.d.Envelope().Topic),
							slog.String("subscribed_at", s.where), slog.Duration("running_for_at_least", now.Sub(c.start)))
					}
				}
			}
		}
	})
}

// drainRemote waits until the broker has nothing left for the
// subscription's consumers that it held when drainRemote began: their
// events are handled (or dead-lettered). Receivers that cannot tell are
// not waited for.
func (s *subscriber[T]) drainRemote(ctx context.Context) error {
	r := s.remote
	r.mu.Lock()
	recvs, stopped := slices.Clone(r.recvs), r.stopped
	r.mu.Unlock()
	if stopped {
		return nil
	}
	for _, recv := range recvs {
		d, ok := recv.(Drainer)
		if !ok {
			continue
		}
		if err := d.Drain(ctx); err != nil && !errors.Is(err, ErrClosed) {
			return fmt.Errorf("eventbus: draining %s: %w", s.Subscription, err)
		}
	}
	return nil
}

// stopReceivers ends the subscription's consumers; the events a durable
// one (Name, Group) has not handled wait on the broker for its next
// receiver.
func (s *subscriber[T]) stopReceivers() error {
	r := s.remote
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	recvs := r.recvs
	close(r.stop)
	r.mu.Unlock()
	var errs []error
	for _, recv := range recvs {
		if err := recv.Stop(context.Background()); err != nil {
			s.bus.logger.LogAttrs(context.Background(), slog.LevelWarn, "eventbus: stopping a consumer failed",
				slog.String("subscriber", s.name), slog.Any("error", err))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
