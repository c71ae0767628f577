package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// TestMain checks that no goroutine outlives the tests: run must leave none
// behind, the bus's included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func runJSON(t *testing.T, ctx context.Context, args ...string) (Summary, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(ctx, append(args, "-json"), &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	var sum Summary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &sum), "stdout is the JSON summary alone")
	return sum, stderr.String()
}

func TestRun(t *testing.T) {
	// In a synctest bubble the clock moves only while every goroutine is
	// blocked: the feed's pacer fires only once the system has reacted to
	// the ticks before, as on an infinitely fast machine. What the
	// subtests check of market-time rates then holds however loaded the
	// machine that runs them. (Subtests may not run in the bubble.)
	var sum Summary
	var live string
	synctest.Test(t, func(t *testing.T) {
		sum, live = runJSON(t, t.Context(), "-duration", "1s", "-seed", "1")
	})

	t.Run("the feed publishes exactly rate times duration ticks", func(t *testing.T) {
		assert.EqualValues(t, defaultRate, sum.Components.MarketFeed.Ticks)
	})

	t.Run("loses no event", func(t *testing.T) {
		assert.True(t, sum.Delivery.OK, "problems: %q", sum.Delivery.Problems)
		assert.Empty(t, sum.CloseError)
		assert.Zero(t, sum.Bus.Dropped+sum.Bus.Undelivered)
		assert.Equal(t, sum.Bus.Dispatched, sum.Delivery.Expected, "the bus dispatched every delivery owed")
		assert.Equal(t, sum.Bus.Delivered+sum.Bus.DeadLettered, sum.Delivery.Expected)
		assertOnlyTheWebhookFailed(t, sum)
	})

	t.Run("every component saw the events it subscribes to", func(t *testing.T) {
		type key struct{ component, topic string }
		rows := map[key]SubscriptionRow{}
		for _, r := range sum.Subscriptions {
			rows[key{r.Component, r.Topic}] = r
		}
		for _, want := range []key{
			{"Orchestrator", eventbus.PolicyUpdatedType},
			{"RiskGuard", eventbus.PolicyUpdatedType},
			{"PortfolioBalancer", eventbus.PolicyUpdatedType},
			{"MSCAI", eventbus.HealthStatusChangedType},
			{"MSCAI", eventbus.StrategyPromotedType},
			{"MSCAI", eventbus.TradeExecutedType},
			{"StrategyRuntime", eventbus.StrategyPromotedType},
			{"StrategyRuntime", eventbus.OpportunitiesUpdatedType},
			{"StrategyRuntime", TickTopic},
			{"StrategyGenerator", eventbus.TradeExecutedType},
			{"EnsembleManager", eventbus.ModelPromotedType},
			{"HealthMonitor", eventbus.TradeExecutedType},
			{"Notifier", eventbus.HealthStatusChangedType},
			{"OpportunityRanker", TickTopic},
			{"Analytics", "*"},
			{"MetricsLogger", "*"},
			{"IncidentLog", eventbus.DeadLetterTopic},
		} {
			r, ok := rows[want]
			if !assert.True(t, ok, "%s subscribes to %s", want.component, want.topic) {
				continue
			}
			if want.topic != eventbus.DeadLetterTopic { // dead letters are up to the webhook's luck
				assert.NotZero(t, r.Expected, "%s had events to receive on %s", want.component, want.topic)
			}
			assert.Equal(t, r.Expected, r.Handled+r.DeadLettered,
				"%s on %s: what its handler took, plus what failed every attempt", want.component, want.topic)
		}
		assert.Len(t, sum.Subscriptions, 17, "no subscription beyond those above")
	})

	t.Run("the crash drives the system defensive", func(t *testing.T) {
		s := sum.Scenario
		assert.True(t, s.Happened, "%+v", s)
		assert.Greater(t, s.CriticalAt, s.CrashStart, "health went CRITICAL after the crash began")
		assert.GreaterOrEqual(t, s.MaxDrawdown, criticalDrawdown)
		assert.GreaterOrEqual(t, s.DefensiveAt, s.CriticalAt, "the MSC AI turned DEFENSIVE on the CRITICAL health")
		assert.Less(t, s.CriticalAt, 0.6, "early enough to see the system run defensive")
		c := sum.Components
		assert.Equal(t, eventbus.RiskModeDefensive, c.Orchestrator.Mode)
		assert.InDelta(t, limitsOf[eventbus.RiskModeDefensive].minConfidence, c.Orchestrator.MinConfidence, 1e-9)
		assert.Equal(t, limitsOf[eventbus.RiskModeDefensive].maxPositions, c.RiskGuard.MaxPositions)
		normal, defensive := c.Executor.ByMode[eventbus.RiskModeNormal], c.Executor.ByMode[eventbus.RiskModeDefensive]
		assert.Less(t, defensive.BuysPerSecond, normal.BuysPerSecond, "the Executor buys less often")
		assert.Less(t, defensive.AverageNotional, normal.AverageNotional, "and smaller")
		alerted := c.Notifier.Alerts > 0 || slices.ContainsFunc(c.IncidentLog.Incidents, func(s string) bool {
			return strings.HasPrefix(s, "Notifier gave up")
		})
		assert.True(t, alerted, "the Notifier alerted on CRITICAL, or its alert is a dead letter")
	})

	t.Run("the live view is plain lines off a terminal", func(t *testing.T) {
		assert.Contains(t, live, "events/s=")
		assert.Contains(t, live, "health=CRITICAL policy=DEFENSIVE")
		assert.Contains(t, live, "DrawdownGuard DEGRADED → CRITICAL")
		assert.NotContains(t, live, "\x1b[", "no escape codes")
	})
}

// assertOnlyTheWebhookFailed checks that the only handler failures were
// the flaky webhook's, and none a publish refused at the end of the run.
func assertOnlyTheWebhookFailed(t *testing.T, sum Summary) {
	t.Helper()
	assert.Equal(t, uint64(sum.Components.Notifier.Failures), sum.Bus.Errors, "handler failures")
	for _, incident := range sum.Components.IncidentLog.Incidents {
		assert.True(t, strings.HasPrefix(incident, "Notifier gave up"), incident)
	}
}

// Flat out, the queues are full when the market stops: the reactions
// still under way (trades, health changes, policies) must run out before
// Close refuses publishes.
//
// How many ticks a flat-out run sends depends on the machine (a loaded one
// may send fewer than the default rate would): that the feed is then paced
// by its subscribers alone is TestMarketFeedFlatOutIsPacedByItsSubscribers.
func TestRunFlatOutSettlesBeforeClosing(t *testing.T) {
	sum, _ := runJSON(t, t.Context(), "-duration", "300ms", "-rate", "0", "-quiet")
	assert.True(t, sum.Delivery.OK, "problems: %q", sum.Delivery.Problems)
	assertOnlyTheWebhookFailed(t, sum)
	assert.Zero(t, sum.Rate, "the run was flat out")
	assert.NotZero(t, sum.Components.MarketFeed.Ticks)
}

// With -rate 0 the feed publishes as fast as its subscribers take the
// ticks, and no faster or slower: in a synctest bubble, where a handler
// takes exactly its sleep, a handler of 100 µs lets through exactly one
// tick per 100 µs of the session, twice what the default rate would send.
func TestMarketFeedFlatOutIsPacedByItsSubscribers(t *testing.T) {
	const session, perTick = time.Second, 100 * time.Microsecond
	synctest.Test(t, func(t *testing.T) {
		bus, err := eventbus.New()
		require.NoError(t, err)
		_, err = tickTopic(bus).Subscribe(func(context.Context, eventbus.Event[Tick]) error {
			time.Sleep(perTick)
			return nil
		}, eventbus.Sync())
		require.NoError(t, err)
		feed := newMarketFeed(bus, newMarket(1), config{rate: 0, duration: session, seed: 1})

		require.NoError(t, feed.run(t.Context()))
		require.NoError(t, bus.Close(t.Context()))

		assert.EqualValues(t, int64(session/perTick), feed.state().Ticks, "one tick per handler call of the session")
		assert.Greater(t, feed.state().Ticks, uint64(defaultRate*session.Seconds()), "faster than the default rate")
	})
}

func TestRunPrintsTheSummaryAsText(t *testing.T) {
	var stdout bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-duration", "300ms", "-quiet"}, &stdout, io.Discard))
	for _, want := range []string{
		"TOPIC", "SUBSCRIBER", "market.tick", "trade.executed", "MSC AI", "Executor", "Scenario:",
		"Delivery check: PASS, every published event reached every subscriber",
	} {
		assert.Contains(t, stdout.String(), want)
	}
}

// An interrupt (Ctrl-C cancels run's ctx) ends the run early, and it still
// drains the bus and reports.
//
// It runs in a synctest bubble, where the clock moves only while every
// goroutine is blocked: the run's elapsed time is then its own, not the
// machine's load.
func TestRunStopsCleanlyWhenInterrupted(t *testing.T) {
	var sum Summary
	var took time.Duration
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		sum, _ = runJSON(t, ctx, "-duration", "1m", "-quiet")
		took = time.Since(start)
	})
	assert.GreaterOrEqual(t, took, 300*time.Millisecond, "it ran until the interrupt")
	assert.Less(t, took, closeTimeout, "and then stopped, without waiting out the minute or a Close deadline")
	assert.True(t, sum.Interrupted)
	assert.True(t, sum.Delivery.OK, "problems: %q", sum.Delivery.Problems)
	assertOnlyTheWebhookFailed(t, sum)
	assert.NotZero(t, sum.Bus.Published)
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown flag is refused", []string{"-kafka", "localhost:9092"}, "flag provided but not defined: -kafka"},
		{"an unknown role is refused", []string{"-role", "sideways"}, `-role "sideways": want all, producers or consumers`},
		{"a consumers role in memory is refused", []string{"-role", "consumers"}, "-role consumers needs -nats"},
		{"a producers role in memory is refused", []string{"-role", "producers"}, "-role producers needs -nats"},
		{"a stream without -nats is refused", []string{"-stream", "EVENTS"}, "-stream and -prefix need -nats"},
		{"a NATS URL without a scheme is refused", []string{"-nats", "localhost:4222"}, `-nats "localhost:4222": want a URL`},
		{"a NATS URL of another scheme is refused", []string{"-nats", "http://localhost:4222"}, `-nats "http://localhost:4222": want a URL`},
		{"a stream name with a dot is refused", []string{"-nats", "nats://localhost:4222", "-stream", "A.B"}, `-stream "A.B": want 1 to 255`},
		{"a prefix with a wildcard is refused", []string{"-nats", "nats://localhost:4222", "-prefix", "qt.>"}, `-prefix "qt.>": want dot-separated tokens`},
		{"a malformed duration is refused", []string{"-duration", "soon"}, `invalid value "soon" for flag -duration`},
		{"a zero duration is refused", []string{"-duration", "0s"}, "-duration 0s: must be positive"},
		{"a negative rate is refused", []string{"-rate", "-5"}, "-rate -5: must be 0"},
		{"an argument is refused", []string{"now"}, `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tc.args, &stdout, &stderr)
			require.ErrorIs(t, err, errUsage)
			assert.Equal(t, 2, exitCode(err, io.Discard))
			assert.Contains(t, stderr.String(), tc.want)
			assert.Contains(t, stderr.String(), "Usage: quantumtrader [flags]")
			assert.Contains(t, stderr.String(), "-duration duration")
			assert.Empty(t, stdout.String())
		})
	}
	t.Run("-h prints the usage and succeeds", func(t *testing.T) {
		var stderr bytes.Buffer
		err := run(t.Context(), []string{"-h"}, io.Discard, &stderr)
		require.ErrorIs(t, err, flag.ErrHelp)
		assert.Equal(t, 0, exitCode(err, io.Discard))
		assert.Contains(t, stderr.String(), "Usage: quantumtrader [flags]")
	})
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{errors.Join(errUsage, errors.New("-rate -1")), 2},
		{errLoss, 1},
		{errors.New("anything else"), 1},
	} {
		var stderr bytes.Buffer
		assert.Equal(t, tc.want, exitCode(tc.err, &stderr), "%v", tc.err)
		if tc.want == 1 {
			assert.Contains(t, stderr.String(), tc.err.Error(), "the error is reported")
		}
	}
}

func TestCheckDelivery(t *testing.T) {
	ok := SubscriptionRow{Component: "Orchestrator", Topic: "policy.updated", Expected: 5, Dispatched: 5, Delivered: 5, Handled: 5}
	for _, tc := range []struct {
		name     string
		change   func(*SubscriptionRow)
		closeErr error
		problem  string // "" for a pass
	}{
		{"every event delivered passes", func(*SubscriptionRow) {}, nil, ""},
		{"a dead letter counts as handled, not lost", func(r *SubscriptionRow) {
			r.Delivered, r.Handled, r.DeadLettered, r.Retries = 4, 4, 1, 2
		}, nil, ""},
		{"an event never dispatched fails", func(r *SubscriptionRow) {
			r.Dispatched, r.Delivered, r.Handled = 4, 4, 4
		}, nil, "4 of 5 events dispatched"},
		{"a failure that was not dead-lettered fails", func(r *SubscriptionRow) {
			r.Delivered, r.Handled = 4, 4
		}, nil, "4 delivered and 0 dead-lettered of 5 published"},
		{"a dropped event fails", func(r *SubscriptionRow) {
			r.Dispatched, r.Delivered, r.Handled, r.Dropped = 4, 4, 4, 1
		}, nil, "1 dropped"},
		{"a handler count that disagrees with the bus fails", func(r *SubscriptionRow) {
			r.Handled = 3
		}, nil, "the handler took 3 events, the bus counted 5 delivered"},
		{"a Close that gave up fails", func(*SubscriptionRow) {}, context.DeadlineExceeded, "Close gave up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.change(&r)
			d := checkDelivery([]SubscriptionRow{r}, tc.closeErr, checkExact, 0)
			if tc.problem == "" {
				assert.True(t, d.OK)
				assert.Empty(t, d.Problems)
				return
			}
			assert.False(t, d.OK)
			assert.Contains(t, strings.Join(d.Problems, "\n"), tc.problem)
		})
	}
}

func TestHealthOf(t *testing.T) {
	const (
		healthy  = eventbus.HealthStatusHealthy
		degraded = eventbus.HealthStatusDegraded
		critical = eventbus.HealthStatusCritical
	)
	for _, tc := range []struct {
		from     eventbus.HealthStatus
		drawdown float64
		want     eventbus.HealthStatus
	}{
		{healthy, 0.01, healthy},
		{healthy, 0.03, degraded},
		{healthy, 0.07, critical},
		{degraded, 0.02, degraded}, // not yet hysteresis below the limit
		{degraded, 0.01, healthy},
		{critical, 0.05, critical},
		{critical, 0.04, degraded},
		{critical, 0.001, healthy},
	} {
		assert.Equal(t, tc.want, healthOf(tc.from, tc.drawdown), "%s at a drawdown of %.3f", tc.from, tc.drawdown)
	}
}

func TestCheckDeliveryByRole(t *testing.T) {
	ok := SubscriptionRow{Component: "Orchestrator", Topic: "policy.updated", Expected: 5, Dispatched: 5, Delivered: 5, Handled: 5}
	for _, tc := range []struct {
		name          string
		kind          checkKind
		change        func(*SubscriptionRow)
		publishFailed uint64
		problem       string // "" for a pass
	}{
		{"at least once passes with more than was published", checkAtLeastOnce, func(r *SubscriptionRow) {
			r.Dispatched, r.Delivered, r.Handled = 7, 7, 7
		}, 0, ""},
		{"at least once fails with fewer", checkAtLeastOnce, func(r *SubscriptionRow) {
			r.Dispatched, r.Delivered, r.Handled = 4, 4, 4
		}, 0, "4 delivered and 0 dead-lettered of 5 published"},
		{"the consumers' check ignores what this process published", checkHandled, func(r *SubscriptionRow) {
			r.Expected = 0
		}, 0, ""},
		{"the consumers' check fails on a delivery begun and never finished", checkHandled, func(r *SubscriptionRow) {
			r.Expected, r.Dispatched = 0, 6
		}, 0, "5 delivered and 0 dead-lettered of 6 dispatched"},
		{"the producers' check fails on a dropped event", checkStored, func(r *SubscriptionRow) {
			r.Dropped = 1
		}, 0, "1 dropped"},
		{"the producers' check fails on a publish the broker did not store", checkStored, func(*SubscriptionRow) {},
			2, "the broker did not store 2 published events"},
		{"at least once fails on a publish the broker did not store", checkAtLeastOnce, func(*SubscriptionRow) {},
			1, "the broker did not store 1 published events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.change(&r)
			d := checkDelivery([]SubscriptionRow{r}, nil, tc.kind, tc.publishFailed)
			assert.Equal(t, tc.kind, d.Check)
			if tc.problem == "" {
				assert.True(t, d.OK, "problems: %q", d.Problems)
				return
			}
			assert.False(t, d.OK)
			assert.Contains(t, strings.Join(d.Problems, "\n"), tc.problem)
		})
	}
	assert.NotEmpty(t, checkDelivery(nil, nil, checkHandled, 0).Skipped, "the consumers say why the loss check is skipped")
	assert.NotEmpty(t, checkDelivery(nil, nil, checkStored, 0).Skipped, "the producers say why the loss check is skipped")
}

func TestRunOverNATS(t *testing.T) {
	t.Run("runs the whole system over NATS", func(t *testing.T) {
		srv := natstest.Start(t)
		names := srv.Names(t)
		sum, _ := runJSON(t, t.Context(), "-nats", srv.URL(), "-stream", names.Stream, "-prefix", names.SubjectPrefix,
			"-duration", "1s", "-quiet")
		assert.True(t, sum.Delivery.OK, "problems: %q", sum.Delivery.Problems)
		assert.Equal(t, checkAtLeastOnce, sum.Delivery.Check)
		assert.Equal(t, roleAll, sum.Role)
		assert.Equal(t, names.Stream, sum.Stream)
		assert.Equal(t, defaultRate, sum.Rate, "the default rate over NATS, as in memory")
		assert.NotZero(t, sum.Components.MarketFeed.Ticks)
		assertOnlyTheWebhookFailed(t, sum)
	})

	t.Run("splits the producers and the consumers into two runs", func(t *testing.T) {
		srv := natstest.Start(t)
		names := srv.Names(t)
		flags := []string{"-nats", srv.URL(), "-stream", names.Stream, "-prefix", names.SubjectPrefix, "-quiet"}

		// The consumers run until interrupted, as with Ctrl-C.
		interrupt, stop := context.WithCancel(t.Context())
		defer stop()
		subscribed := make(chan struct{})
		onSubscribed = func() { close(subscribed) }
		defer func() { onSubscribed = nil }()
		consumed := make(chan Summary, 1)
		go func() {
			var stdout, stderr bytes.Buffer
			err := run(interrupt, append(flags, "-role", "consumers", "-duration", "1m", "-json"), &stdout, &stderr)
			assert.NoError(t, err, "consumers; stderr:\n%s", stderr.String())
			var sum Summary
			assert.NoError(t, json.Unmarshal(stdout.Bytes(), &sum))
			consumed <- sum
		}()
		select { // every consumer subscribed: the producers may start
		case <-subscribed:
			onSubscribed = nil // the producers' run is not waited for
		case sum := <-consumed:
			t.Fatalf("the consumers ended before subscribing: %+v", sum.Delivery)
		}

		produced, _ := runJSON(t, t.Context(), append(flags, "-role", "producers", "-duration", "1s")...)
		stop()
		consumers := <-consumed

		assert.True(t, produced.Delivery.OK, "producers: %q", produced.Delivery.Problems)
		assert.Equal(t, checkStored, produced.Delivery.Check)
		assert.True(t, consumers.Delivery.OK, "consumers: %q", consumers.Delivery.Problems)
		assert.Equal(t, checkHandled, consumers.Delivery.Check)
		assert.True(t, consumers.Interrupted)
		ticks := produced.Components.MarketFeed.Ticks
		require.NotZero(t, ticks)
		for _, r := range consumers.Subscriptions {
			if r.Topic == TickTopic {
				// The check the program cannot make: the consumers got
				// every tick the producers published, and once each.
				assert.Equal(t, ticks, r.Delivered, "%s on %s", r.Component, r.Topic)
			}
		}
		assert.NotEmpty(t, consumers.Components.StrategyRuntime.Live, "the promotions crossed over")
		assert.Equal(t, ticks, consumers.Components.StrategyRuntime.Ticks)
	})
}
