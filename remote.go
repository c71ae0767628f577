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

// The transport engine (see engine.go): a topic encodes what it publishes
// into an Envelope (remote_publish.go), and a subscription pulls
// Deliveries from a Receiver per topic (this file), decodes them, runs the
// handler and settles each one with the broker (remote_deliver.go).

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

// remoteSub is a subscription's half of the transport engine: a receiver
// per topic (one, or one per topic for SubscribeAll), and what its keeper
// watches.
type remoteSub[T any] struct {
	*subscriber[T]
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

func newRemoteSub[T any](s *subscriber[T], cfg subConfig) *remoteSub[T] {
	opts := SubscribeOptions{Group: cfg.group, Replay: cfg.replay, MaxInFlight: cfg.concurrency, AckWait: cmp.Or(cfg.ackWait, s.bus.cfg.ackWait)}
	if cfg.group == "" {
		opts.Name = cfg.name // empty: an ephemeral consumer
	}
	r := &remoteSub[T]{subscriber: s, opts: opts, stop: make(chan struct{})}
	s.engine = r
	return r
}

// closeQueues has nothing to do: the broker holds the queues.
func (remoteTopic[T]) closeQueues() {}

// subscribe joins s to the topic and starts its receiver.
func (t remoteTopic[T]) subscribe(s *subscriber[T], cfg subConfig) error {
	r := newRemoteSub(s, cfg)
	return attachRemote(t.bus, r, func() error {
		t.mu.Lock()
		t.subs.Store(t.subs.Load().with(s))
		t.mu.Unlock()
		if err := r.listen(t.name, t.decode); err != nil {
			s.detach()
			return err
		}
		return nil
	})
}

// attachRemote registers a new subscription on a Transport: join adds it to
// its list and starts its receivers, under b.mu. If join fails, it has taken
// the subscription off its lists again; the receivers it started are
// stopped here.
func attachRemote[T any](b *Bus, s *remoteSub[T], join func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	s.startKeeper()
	if err := join(); err != nil {
		_ = s.stopReceivers() // logged; nothing was delivered yet
		return err
	}
	b.live[s.Subscription] = struct{}{}
	return nil
}

// subscribeAllRemote is the transport engine's half of SubscribeAll: a
// receiver for every topic there is, and for every topic made later (see
// listenNew).
func subscribeAllRemote(s *subscriber[any], cfg subConfig) error {
	b, r := s.bus, newRemoteSub(s, cfg)
	return attachRemote(b, r, func() error { // under b.mu
		b.all.Store(b.all.Load().with(s))
		b.remoteAll = append(b.remoteAll, r)
		for _, t := range b.order {
			if err := r.listen(t.core().name, t.decodeAny); err != nil {
				b.all.Store(b.all.Load().without(s))
				b.remoteAll = b.remoteAll[:len(b.remoteAll)-1]
				return err
			}
		}
		return nil
	})
}

// open starts a consumer of topic for the subscription.
func (s *remoteSub[T]) open(topic string) (Receiver, error) {
	opts := s.opts
	opts.Topic = topic
	recv, err := s.bus.cfg.transport.Subscribe(s.bus.handlerCtx, opts)
	if err != nil {
		return nil, fmt.Errorf("eventbus: %s: receiving %s: %w", s.Subscription, topic, err)
	}
	return recv, nil
}

// serve starts the workers that handle what recv receives. If the
// subscription has stopped meanwhile, it stops recv instead.
func (s *remoteSub[T]) serve(recv Receiver, decode func(*Envelope) (Event[T], error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		_ = recv.Stop(context.Background()) // never handed out: nothing to lose
		return
	}
	s.recvs = append(s.recvs, recv)
	for range s.concurrency {
		call := new(atomic.Pointer[remoteCall])
		s.calls = append(s.calls, call)
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
func (s *remoteSub[T]) listen(topic string, decode func(*Envelope) (Event[T], error)) error {
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
func (s *remoteSub[T]) startKeeper() {
	ackWait, stallAfter := s.opts.AckWait, s.bus.cfg.stallTimeout
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
			case <-s.stop:
				return nil
			case now := <-tick.C:
				s.mu.Lock()
				calls := slices.Clone(s.calls)
				s.mu.Unlock()
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

// drain waits until the broker has nothing left for the subscription's
// consumers that it held when drain began: their events are handled (or
// dead-lettered). Receivers that cannot tell are not waited for.
func (s *remoteSub[T]) drain(ctx context.Context) error {
	s.mu.Lock()
	recvs, stopped := slices.Clone(s.recvs), s.stopped
	s.mu.Unlock()
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
func (s *remoteSub[T]) stopReceivers() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	recvs := s.recvs
	close(s.stop)
	s.mu.Unlock()
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

// closeQueue stops the receivers: the broker redelivers what was not
// settled, and keeps for a durable consumer what it has not received.
func (s *remoteSub[T]) closeQueue() {
	_ = s.stopReceivers() // logged
}

// discard stops the receivers (see closeQueue).
func (s *remoteSub[T]) discard(undelivered bool) error { return s.stopReceivers() }

// deliveries are none: a remote subscription counts its deliveries in its
// Subscription's counters.
func (s *remoteSub[T]) deliveries() (dispatched, delivered uint64) { return 0, 0 }
