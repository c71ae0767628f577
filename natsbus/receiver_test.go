package natsbus_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSubscribe(t *testing.T) {
	t.Parallel()

	t.Run("fans out every event to every subscription", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		rs := []eventbus.Receiver{
			h.subscribe(eventbus.SubscribeOptions{Topic: "policy.updated"}),
			h.subscribe(eventbus.SubscribeOptions{Topic: "policy.updated", Name: "orchestrator"}),
			h.subscribe(eventbus.SubscribeOptions{Topic: "policy.updated", Name: "risk-guard"}),
			h.subscribe(eventbus.SubscribeOptions{Topic: "policy.updated", Group: "balancers"}),
		}
		envs := h.publish("policy.updated", payloads(5)...)
		for i, r := range rs {
			for _, want := range envs {
				d := h.next(r)
				assert.Equal(t, want.ID, d.Envelope().ID, "receiver %d", i)
				require.NoError(t, d.Ack(h.ctx()))
			}
		}
	})

	t.Run("shares the events of a group between its members, none twice", func(t *testing.T) {
		t.Parallel()
		srv := natstest.Start(t)
		h := startHarness(t, srv.Connect(t), srv.Names(t))
		other := h.sibling(srv) // another process
		opts := eventbus.SubscribeOptions{Topic: "trade.executed", Group: "executors"}
		members := []eventbus.Receiver{h.subscribe(opts), other.subscribe(opts)}

		type receipt struct {
			member int
			id     eventbus.ID
		}
		receipts := make(chan receipt)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i, r := range members {
			wg.Go(func() {
				for {
					d, err := r.Next(ctx)
					if err != nil {
						return
					}
					assert.NoError(t, d.Ack(context.Background()))
					select {
					case receipts <- receipt{i, d.Envelope().ID}:
					case <-ctx.Done():
						return
					}
				}
			})
		}
		const n = 20
		envs := h.publish("trade.executed", payloads(n)...)
		times := map[eventbus.ID]int{}
		var perMember [2]int
		deadline := time.After(waitFor)
		for range n {
			select {
			case r := <-receipts:
				times[r.id]++
				perMember[r.member]++
			case <-deadline:
				t.Fatalf("received %d of %d events", len(times), n)
			}
		}
		cancel()
		wg.Wait()

		for _, e := range envs {
			assert.Equal(t, 1, times[e.ID], "deliveries of event %s", e.ID)
		}
		assert.Positive(t, perMember[0], "events handled by the first member")
		assert.Positive(t, perMember[1], "events handled by the second member")
		for _, hh := range []*harness{h, other} {
			require.NoError(t, hh.nc.FlushWithContext(h.ctx()), "acks are plain publishes: flushed, the broker has them")
		}
		info := h.consumer()
		assert.Zero(t, info.NumAckPending, "deliveries pending")
		assert.Zero(t, info.NumPending, "events not delivered")
	})

	t.Run("resumes a durable subscription after the last acknowledged event", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		opts := eventbus.SubscribeOptions{Topic: "policy.updated", Name: "risk-guard", MaxInFlight: 4, AckWait: time.Second}
		first := h.subscribe(opts)
		envs := h.publish("policy.updated", payloads(10)...)
		acked := map[eventbus.ID]bool{}
		for _, want := range envs[:4] {
			d := h.next(first)
			require.Equal(t, want.ID, d.Envelope().ID)
			require.NoError(t, d.Ack(h.ctx()))
			acked[want.ID] = true
		}
		held := h.next(first) // handed out, never settled: comes back after AckWait
		require.Equal(t, envs[4].ID, held.Envelope().ID)
		require.NoError(t, first.Stop(h.ctx()))

		second := h.subscribe(opts)
		got := map[eventbus.ID]eventbus.Delivery{}
		for len(got) < 6 {
			d := h.next(second)
			id := d.Envelope().ID
			require.False(t, acked[id], "acknowledged event %s delivered again", id)
			// The first receiver had fetched the rest ahead and gave them
			// back; one can still come twice (at least once), the first
			// delivery being the one kept.
			if _, seen := got[id]; !seen {
				got[id] = d
			}
			require.NoError(t, d.Ack(h.ctx()))
		}
		for _, e := range envs[4:] {
			assert.Contains(t, got, e.ID)
		}
		assert.Equal(t, 2, got[envs[4].ID].Attempt(), "attempt of the event the first receiver held")
		info := h.consumer()
		assert.Zero(t, info.NumAckPending, "deliveries pending")
		assert.Zero(t, info.NumPending, "events not delivered")
	})

	t.Run("starts a new subscription with events published from now on", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.publish("health.status_changed", "before")
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "health.status_changed", Name: "notifier"})
		after := h.publish("health.status_changed", "after")[0]
		d := h.next(r)
		assert.Equal(t, after.ID, d.Envelope().ID)
		require.NoError(t, d.Ack(h.ctx()))
	})

	t.Run("starts a Replay subscription with the last stored event of its topic", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		old := h.publish("health.status_changed", "healthy", "degraded")
		h.publish("health.status_changed.detail", "other topic")
		replay := h.subscribe(eventbus.SubscribeOptions{Topic: "health.status_changed", Replay: true})
		empty := h.subscribe(eventbus.SubscribeOptions{Topic: "model.promoted", Replay: true})

		d := h.next(replay)
		assert.Equal(t, old[1].ID, d.Envelope().ID, "the last stored event comes first")
		require.NoError(t, d.Ack(h.ctx()))
		newer := h.publish("health.status_changed", "critical")[0]
		d = h.next(replay)
		assert.Equal(t, newer.ID, d.Envelope().ID)
		require.NoError(t, d.Ack(h.ctx()))

		first := h.publish("model.promoted", "m1")[0]
		d = h.next(empty)
		assert.Equal(t, first.ID, d.Envelope().ID, "replay of a topic with no event yet")
		require.NoError(t, d.Ack(h.ctx()))
	})

	t.Run("hands out a batch in publish order, with room for the members of a group", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, natsbus.WithPullBatch(8))
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Group: "ledger", MaxInFlight: 1})
		envs := h.publish("trade.executed", payloads(20)...)
		for _, want := range envs {
			d := h.next(r)
			assert.Equal(t, want.ID, d.Envelope().ID)
			require.NoError(t, d.Ack(h.ctx()))
		}
		assert.Equal(t, 32*(8+1), h.consumer().Config.MaxAckPending,
			"32 members, each with a batch of 8 fetched ahead and 1 being handled")
	})

	t.Run("lets a second member take events while the first holds its batch", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, natsbus.WithPullBatch(4))
		a := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Group: "ledger"})
		envs := h.publish("trade.executed", payloads(4)...)
		held := h.next(a) // a fetched the rest too and settles none of them
		require.Equal(t, envs[0].ID, held.Envelope().ID)
		b := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Group: "ledger"})
		later := h.publish("trade.executed", payloads(3)...)
		for _, want := range later {
			d := h.next(b)
			assert.Equal(t, want.ID, d.Envelope().ID, "b gets the events a does not hold")
			require.NoError(t, d.Ack(h.ctx()))
		}
	})

	t.Run("lets later events overtake a retry with MaxInFlight 2", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", MaxInFlight: 2})
		envs := h.publish("trade.executed", payloads(2)...)
		d := h.next(r)
		require.Equal(t, envs[0].ID, d.Envelope().ID)
		require.NoError(t, d.Retry(h.ctx(), 200*time.Millisecond))
		for _, want := range []eventbus.ID{envs[1].ID, envs[0].ID} {
			d := h.next(r)
			assert.Equal(t, want, d.Envelope().ID)
			require.NoError(t, d.Ack(h.ctx()))
		}
	})

	t.Run("gives every name and group a consumer of its own", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		names := []string{"a.b", "a_b", "a b", "a*b", "a>b", "a/b", "ledger v2/α.*>", strings.Repeat("long", 100), strings.Repeat("long", 100) + "!"}
		var rs []eventbus.Receiver
		for _, name := range names {
			rs = append(rs, h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Name: name}))
		}
		rs = append(rs, h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Group: "a.b"}))
		rs = append(rs, h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed.v2", Name: "a.b"}))
		assert.Len(t, h.consumers(), len(rs))

		e := h.publish("trade.executed", "{}")[0]
		for _, r := range rs[:len(rs)-1] {
			d := h.next(r)
			assert.Equal(t, e.ID, d.Envelope().ID)
			require.NoError(t, d.Ack(h.ctx()))
		}
		for _, c := range h.consumers() {
			assert.Regexp(t, `^[A-Za-z0-9_-]{1,81}$`, c)
		}
	})

	t.Run("rejects invalid options", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		for _, topic := range []string{"", "a..b", "a.*", "a.>", "trade executed", ".trade"} {
			_, err := h.tr.Subscribe(h.ctx(), eventbus.SubscribeOptions{Topic: topic})
			assert.ErrorIs(t, err, eventbus.ErrInvalidTopic, "topic %q", topic)
		}
		_, err := h.tr.Subscribe(h.ctx(), eventbus.SubscribeOptions{Topic: "trade.executed", MaxInFlight: -1})
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
		assert.ErrorContains(t, err, "MaxInFlight -1")
		_, err = h.tr.Subscribe(h.ctx(), eventbus.SubscribeOptions{Topic: "trade.executed", AckWait: -time.Second})
		assert.ErrorIs(t, err, eventbus.ErrInvalidOption)
		assert.ErrorContains(t, err, "AckWait -1s")
		assert.Empty(t, h.consumers())
	})

	t.Run("updates the settings of an existing durable consumer", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger", Replay: true})
		require.NoError(t, r.Stop(h.ctx()))
		h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger", MaxInFlight: 8, AckWait: time.Minute})
		info := h.consumer()
		assert.Equal(t, 32*(natsbus.DefaultPullBatch+8), info.Config.MaxAckPending)
		assert.Equal(t, time.Minute, info.Config.AckWait)
		assert.Equal(t, jetstream.DeliverLastPerSubjectPolicy, info.Config.DeliverPolicy, "it keeps its place")
	})
}

func TestReceiver(t *testing.T) {
	t.Parallel()

	t.Run("deletes the ephemeral consumer once stopped and settled", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		require.Len(t, h.consumers(), 1)
		h.publish("trade.executed", "{}")
		d := h.next(r)

		require.NoError(t, r.Stop(h.ctx()))
		assert.Len(t, h.consumers(), 1, "kept while a delivery is unsettled")
		require.NoError(t, d.Ack(h.ctx()), "a delivery handed out before Stop can be settled")
		assert.Empty(t, h.consumers(), "deleted by the last settlement")

		idle := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		require.NoError(t, idle.Stop(h.ctx()))
		assert.Empty(t, h.consumers(), "deleted by Stop when nothing is unsettled")
	})

	t.Run("keeps a durable consumer after Stop", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger"})
		require.NoError(t, r.Stop(h.ctx()))
		require.NoError(t, r.Stop(h.ctx()), "a second Stop")
		assert.Len(t, h.consumers(), 1)
	})

	t.Run("returns ErrClosed after Stop, waking a Next that waits", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger"})
		waiting := make(chan error, 1)
		go func() {
			_, err := r.Next(context.Background())
			waiting <- err
		}()
		require.NoError(t, r.Stop(h.ctx()))
		err := receive(t, waiting, "the waiting Next to return")
		assert.ErrorIs(t, err, eventbus.ErrClosed)
		assert.ErrorContains(t, err, h.subject("trade.executed"))
		_, err = r.Next(h.ctx())
		assert.ErrorIs(t, err, eventbus.ErrClosed)
	})

	t.Run("returns ctx's error when ctx ends, and goes on working", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := r.Next(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		// A Next that waits for its turn behind another honours its ctx too.
		first := make(chan eventbus.Delivery, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			d, err := r.Next(ctx)
			assert.NoError(t, err)
			first <- d
		}()
		ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err = r.Next(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		e := h.publish("trade.executed", "{}")[0]
		d := receive(t, first, "the first Next to return")
		require.NotNil(t, d)
		assert.Equal(t, e.ID, d.Envelope().ID)
		require.NoError(t, d.Ack(h.ctx()))
	})

	t.Run("hands each delivery to one of concurrent callers", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", MaxInFlight: 4})
		const n = 8
		got := make(chan eventbus.ID, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				defer cancel()
				d, err := r.Next(ctx)
				if !assert.NoError(t, err) {
					return
				}
				got <- d.Envelope().ID
				assert.NoError(t, d.Ack(ctx))
			})
		}
		envs := h.publish("trade.executed", payloads(n)...)
		wg.Wait()
		close(got)
		seen := map[eventbus.ID]bool{}
		for id := range got {
			assert.False(t, seen[id], "event %s handed out twice", id)
			seen[id] = true
		}
		assert.ElementsMatch(t, ids(envs), keys(seen))
	})

	t.Run("returns ErrClosed once the connection is closed", func(t *testing.T) {
		t.Parallel()
		nc, names := natstest.Connect(t)
		tr, err := natsbus.New(nc, names.Options()...)
		require.NoError(t, err)
		r, err := tr.Subscribe(context.Background(), eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger"})
		require.NoError(t, err)
		waiting := make(chan error, 1)
		go func() {
			_, err := r.Next(context.Background())
			waiting <- err
		}()
		nc.Close()
		err = receive(t, waiting, "the waiting Next to return")
		assert.ErrorIs(t, err, eventbus.ErrClosed)
		assert.ErrorIs(t, err, nats.ErrConnectionClosed)
		assert.NoError(t, tr.Close(context.Background()), "nothing to delete for a durable consumer")
	})

	t.Run("recreates a consumer deleted behind its back", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "model.promoted", Name: "trainer"})
		h.publish("model.promoted", "m1")
		d := h.next(r)
		require.NoError(t, d.Ack(h.ctx()))

		next := make(chan eventbus.Delivery, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			d, err := r.Next(ctx)
			assert.NoError(t, err)
			next <- d
		}()
		require.Eventually(t, func() bool { return h.consumer().NumWaiting > 0 },
			waitFor, 10*time.Millisecond, "the receiver's pull request reaches the broker")
		name := h.consumers()[0]
		require.NoError(t, h.js.DeleteConsumer(h.ctx(), h.names.Stream, name))
		e := h.publish("model.promoted", "m2")[0]

		d = receive(t, next, "Next to return the event published after the deletion")
		require.NotNil(t, d)
		assert.Equal(t, e.ID, d.Envelope().ID, "the event after the last one handed out")
		require.NoError(t, d.Ack(h.ctx()))
		assert.Equal(t, []string{name}, h.consumers(), "recreated under its name")
	})

	t.Run("keeps delivering when a wait on jetstream's iterator misses its wake-up", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed"})
		it := h.missWakeUps(r)
		envs := h.publish("trade.executed", payloads(3)...)
		for _, want := range envs {
			// Well within the 2*pullHeartbeat after which jetstream's own
			// check would have asked the broker again.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			d, err := r.Next(ctx)
			cancel()
			require.NoError(t, err, "Next, when the iterator's wait for each event misses its wake-up")
			assert.Equal(t, want.ID, d.Envelope().ID)
			require.NoError(t, d.Ack(h.ctx()))
		}
		assert.Equal(t, int32(len(envs)), it.missed.Load(), "waits that missed their wake-up")
	})
}

// TestStopGivesBackWhatADurableReceiverHolds stops a durable receiver
// while it holds a delivery it handed out and has not settled: the event
// must come back to the consumer's next receiver at once, as the second
// attempt, not after the AckWait of a process that is gone.
func TestStopGivesBackWhatADurableReceiverHolds(t *testing.T) {
	t.Parallel()
	// AckWait would bring the events back too, far later than comeBack.
	const ackWait, comeBack = 30 * time.Second, 5 * time.Second
	tests := []struct {
		name     string
		inFlight int // MaxInFlight: more than 1 lets the receiver pull ahead
		events   int // published; the stopped receiver holds the first
	}{
		{"a delivery handed out and not settled", 1, 1},
		{"with events pulled and not handed out beside it", 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if v := h.nc.ConnectedServerVersion(); strings.HasPrefix(v, "2.9.") || strings.HasPrefix(v, "2.8.") {
				// A 2.9 server (the machine's, in CI) takes a nak of a
				// message its pull consumer handed out with a batch to
				// a receiver that then ended as a delivery that never
				// happened: the next receiver sees attempt 1, and an
				// event fetched ahead beside it comes back only after
				// AckWait. Nothing is lost there, only later; the
				// embedded server runs this check.
				t.Skipf("nats-server %s: Stop's give-back is checked on 2.10 and later", v)
			}
			opts := eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger", MaxInFlight: tt.inFlight, AckWait: ackWait}
			first := h.subscribe(opts)
			envs := h.publish("trade.executed", payloads(tt.events)...)
			held := h.next(first)
			require.Equal(t, envs[0].ID, held.Envelope().ID)
			require.Equal(t, 1, held.Attempt())
			require.NoError(t, first.Stop(h.ctx()))

			second := h.subscribe(opts)
			attempts := map[eventbus.ID]int{}
			ctx, cancel := context.WithTimeout(context.Background(), comeBack)
			defer cancel()
			for len(attempts) < tt.events {
				d, err := second.Next(ctx)
				require.NoError(t, err, "Next of the next receiver, %d of %d events back; AckWait is %v", len(attempts), tt.events, ackWait)
				id := d.Envelope().ID
				// At least once: an event fetched ahead and given back may
				// come again (a 2.9 server redelivers a message naked twice
				// twice); the first delivery seen of each is what counts.
				if _, seen := attempts[id]; !seen {
					attempts[id] = d.Attempt()
				}
				require.NoError(t, d.Ack(h.ctx()))
			}
			assert.ElementsMatch(t, ids(envs), keys(attempts))
			assert.Equal(t, 2, attempts[envs[0].ID], "attempt of the event the stopped receiver held")
			assert.NoError(t, held.Ack(h.ctx()), "the holder can still settle it")
			assert.ErrorContains(t, held.Ack(h.ctx()), "already settled")
			assert.Zero(t, h.consumer().NumPending, "events not delivered")
		})
	}
}

// TestGroupMembersSubscribingAtOnce starts the members of a group, each a
// process of its own, at the same moment, so that several find no
// consumer and try to create it: the losers must bind to the winner's.
// With different settings the broker refuses a second create outright
// (consumer already exists); with the same ones it may accept it.
func TestGroupMembersSubscribingAtOnce(t *testing.T) {
	t.Parallel()
	const members, events = 6, 60
	tests := []struct {
		name     string
		inFlight func(member int) int
	}{
		{"with the same settings", func(int) int { return 2 }},
		{"with different settings", func(member int) int { return member + 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.Start(t)
			h := startHarness(t, srv.Connect(t), srv.Names(t))
			trs := []*harness{h}
			for len(trs) < members {
				trs = append(trs, h.sibling(srv))
			}
			type subscribed struct {
				r   eventbus.Receiver
				err error
			}
			results := make(chan subscribed, members)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, m := range trs {
				opts := eventbus.SubscribeOptions{Topic: "trade.executed", Group: "executors", MaxInFlight: tt.inFlight(i)}
				ctx := m.ctx()
				wg.Go(func() {
					<-start
					r, err := m.tr.Subscribe(ctx, opts)
					results <- subscribed{r, err}
				})
			}
			close(start)
			wg.Wait() // each Subscribe is bounded by its ctx
			close(results)
			var rs []eventbus.Receiver
			for res := range results {
				if !assert.NoError(t, res.err, "Subscribe of a member") {
					continue
				}
				rs = append(rs, res.r)
				t.Cleanup(func() { _ = res.r.Stop(context.Background()) })
			}
			require.Len(t, rs, members, "members subscribed")
			require.Len(t, h.consumers(), 1, "consumers of the group")

			envs := h.publish("trade.executed", payloads(events)...)
			got := shareOut(t, rs, events)
			for _, e := range envs {
				assert.Equal(t, 1, got[e.ID], "deliveries of event %s", e.ID)
			}
			info := h.consumer()
			assert.Zero(t, info.NumAckPending, "deliveries pending")
			assert.Zero(t, info.NumPending, "events not delivered")
		})
	}
}

// shareOut receives and acknowledges on every receiver at once until n
// deliveries arrived, failing the test after waitFor; it returns how often
// each event came.
func shareOut(t *testing.T, rs []eventbus.Receiver, n int) map[eventbus.ID]int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	received := make(chan eventbus.ID)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, r := range rs {
		wg.Go(func() {
			for {
				d, err := r.Next(ctx)
				if err != nil {
					return
				}
				assert.NoError(t, d.Ack(context.Background()))
				select {
				case received <- d.Envelope().ID:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	got := map[eventbus.ID]int{}
	deadline := time.After(waitFor)
	for i := range n {
		select {
		case id := <-received:
			got[id]++
		case <-deadline:
			t.Fatalf("received %d of %d deliveries", i, n)
		}
	}
	return got
}

// wakeUpMisser is jetstream's iterator as it behaves under CPU load (see
// firstRecheck): a Next that begins after a message was handed out finds
// the request for the next one still being sent, asks the broker for
// nothing, and waits on an inbox that nothing will reach until its ctx
// ends. Called again, it reads on as usual.
type wakeUpMisser struct {
	jetstream.MessagesContext
	idle   jetstream.MessagesContext // of a consumer that has nothing to deliver
	miss   bool                      // the next Next misses its wake-up; Next calls never overlap
	missed atomic.Int32
}

// missWakeUps makes r read through a wakeUpMisser, which begins as if a
// message had just been handed out.
func (h *harness) missWakeUps(r eventbus.Receiver) *wakeUpMisser {
	h.t.Helper()
	c, err := h.js.CreateConsumer(h.ctx(), h.names.Stream, jetstream.ConsumerConfig{
		FilterSubject: h.subject("nothing"),
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	require.NoError(h.t, err)
	idle, err := c.Messages()
	require.NoError(h.t, err)
	h.t.Cleanup(idle.Stop)
	it := &wakeUpMisser{idle: idle, miss: true}
	natsbus.WrapIterator(r, func(real jetstream.MessagesContext) jetstream.MessagesContext {
		it.MessagesContext = real
		return it
	})
	return it
}

func (it *wakeUpMisser) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	if it.miss {
		it.miss = false
		_, err := it.idle.Next(opts...)
		if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			it.missed.Add(1)
			return nil, err
		}
		// Stop or Drain ended the wait: read what the real iterator has left.
	}
	msg, err := it.MessagesContext.Next(opts...)
	it.miss = err == nil
	return msg, err
}

func (it *wakeUpMisser) Stop() {
	it.idle.Stop()
	it.MessagesContext.Stop()
}

func (it *wakeUpMisser) Drain() {
	it.idle.Stop()
	it.MessagesContext.Drain()
}

func TestDrain(t *testing.T) {
	t.Parallel()

	t.Run("waits until the events the stream held for the consumer are settled", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", MaxInFlight: 2})
		envs := h.publish("trade.executed", payloads(3)...)
		h.publish("policy.updated", payloads(4)...) // later in the stream, for other consumers
		drainer, ok := r.(eventbus.Drainer)
		require.True(t, ok, "the receiver implements eventbus.Drainer")

		short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := drainer.Drain(short)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "nothing is settled yet")
		assert.ErrorContains(t, err, h.subject("trade.executed"))

		retried := false
		drained := make(chan error, 1)
		go func() { drained <- drainer.Drain(h.ctx()) }()
		for got := 0; got < len(envs); {
			d := h.next(r)
			if !retried { // a retried event is not settled until it is acknowledged
				retried = true
				require.NoError(t, d.Retry(h.ctx(), 0))
				continue
			}
			if d.Envelope().ID == envs[2].ID {
				require.NoError(t, d.Reject(h.ctx()), "a rejected event is settled too")
			} else {
				require.NoError(t, d.Ack(h.ctx()))
			}
			got++
		}
		select {
		case err := <-drained:
			assert.NoError(t, err)
		case <-time.After(waitFor):
			t.Fatal("Drain did not return once every event was settled")
		}
		assert.NoError(t, drainer.Drain(h.ctx()), "nothing to wait for")
	})

	t.Run("counts what other members of a group settle", func(t *testing.T) {
		t.Parallel()
		srv := natstest.Start(t)
		h := startHarness(t, srv.Connect(t), srv.Names(t))
		other := h.sibling(srv)
		opts := eventbus.SubscribeOptions{Topic: "trade.executed", Group: "executors"}
		idle, busy := h.subscribe(opts), other.subscribe(opts)
		require.NoError(t, idle.Stop(h.ctx()), "the idle member takes nothing")
		h.publish("trade.executed", payloads(2)...)
		for range 2 {
			require.NoError(t, other.next(busy).Ack(other.ctx()))
		}
		assert.NoError(t, busy.(eventbus.Drainer).Drain(other.ctx()))
	})

	t.Run("returns ErrClosed after Stop", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.subscribe(eventbus.SubscribeOptions{Topic: "trade.executed", Name: "ledger"})
		h.publish("trade.executed", "{}")
		require.NoError(t, r.Stop(h.ctx()))
		assert.ErrorIs(t, r.(eventbus.Drainer).Drain(h.ctx()), eventbus.ErrClosed)
	})
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
