package eventbustest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbustest"
)

// t stands in for the *testing.T of a test function, so that the examples
// can run: it prints what a test would report as a failure.
var t = exampleT{}

type exampleT struct{ testing.TB }

func (exampleT) Helper() {}

// Cleanup drops f: a test would unsubscribe its recorders when it ends, and
// the examples close their bus instead.
func (exampleT) Cleanup(f func()) {}

func (exampleT) Errorf(format string, args ...any) { fmt.Printf("FAIL: "+format+"\n", args...) }

// Fatalf prints the first line of the message: the rest lists the events
// received, with their random IDs.
func (exampleT) Fatalf(format string, args ...any) {
	first, _, _ := strings.Cut(fmt.Sprintf(format, args...), "\n")
	fmt.Println("FATAL:", first)
}

type Trade struct {
	Symbol string
	Qty    float64
}

// executeOrders is the code under test: it publishes a trade per order.
func executeOrders(ctx context.Context, bus *eventbus.Bus, orders ...Trade) {
	trades := eventbus.MustTopic[Trade](bus, "trade.executed")
	for _, o := range orders {
		if err := trades.Publish(ctx, o); err != nil {
			panic(err)
		}
	}
}

// A test records the events that the code under test publishes, waits for
// them, and compares them with what it expects.
func ExampleRecord() {
	ctx := context.Background()
	bus, _ := eventbus.New()
	defer bus.Close(ctx)
	trades := eventbustest.Record(t, eventbus.MustTopic[Trade](bus, "trade.executed"))

	executeOrders(ctx, bus, Trade{"BTCUSDT", 0.5}, Trade{"ETHUSDT", 3})

	trades.WaitN(5*time.Second, 2) // delivery is asynchronous: wait for it
	trades.AssertPayloads([]Trade{{"BTCUSDT", 0.5}, {"ETHUSDT", 3}})
	fmt.Println(trades.Len(), "trades")
	// Output: 2 trades
}

// WaitN returns the first n events as soon as they have arrived, and fails
// the test if they do not arrive in time.
func ExampleRecorder_WaitN() {
	ctx := context.Background()
	bus, _ := eventbus.New()
	defer bus.Close(ctx)
	trades := eventbustest.Record(t, eventbus.MustTopic[Trade](bus, "trade.executed"))

	executeOrders(ctx, bus, Trade{"BTCUSDT", 0.5})

	for _, ev := range trades.WaitN(5*time.Second, 1) {
		fmt.Println(ev.Topic, ev.Payload.Symbol)
	}
	trades.WaitN(100*time.Millisecond, 2) // only one order was executed
	// Output:
	// trade.executed BTCUSDT
	// FATAL: eventbustest: waited 100ms for 2 events on trade.executed; got 1:
}

// WaitMatch waits for the first event a test is interested in, skipping
// the others.
func ExampleRecorder_WaitMatch() {
	ctx := context.Background()
	bus, _ := eventbus.New()
	defer bus.Close(ctx)
	health := eventbus.MustTopic[string](bus, "health.status_changed")
	rec := eventbustest.Record(t, health)

	for _, status := range []string{"HEALTHY", "DEGRADED", "CRITICAL", "HEALTHY"} {
		_ = health.Publish(ctx, status)
	}

	ev := rec.WaitMatch(5*time.Second, func(ev eventbus.Event[string]) bool {
		return ev.Payload == "CRITICAL"
	})
	fmt.Println(ev.Payload)
	// Output: CRITICAL
}

// AssertPayloads compares with go-cmp, so cmp options adjust the
// comparison; here the subscription handles events in parallel, so their
// order is not fixed. After Close returns nil, the recorder holds
// every event there will be.
func ExampleRecorder_AssertPayloads() {
	ctx := context.Background()
	bus, _ := eventbus.New()
	trades := eventbustest.Record(t, eventbus.MustTopic[Trade](bus, "trade.executed"), eventbus.Concurrency(4))

	executeOrders(ctx, bus, Trade{"BTCUSDT", 0.5}, Trade{"ETHUSDT", 3}, Trade{"SOLUSDT", 10})
	_ = bus.Close(ctx)

	bySymbol := cmpopts.SortSlices(func(a, b Trade) bool { return a.Symbol < b.Symbol })
	fmt.Println(trades.AssertPayloads([]Trade{{"BTCUSDT", 0.5}, {"ETHUSDT", 3}, {"SOLUSDT", 10}}, bySymbol))
	// Output: true
}

// RecordFunc lets a test decide how the subscription's handler answers,
// here failing the trades above a risk limit. Failed deliveries are
// recorded too.
func ExampleRecordFunc() {
	ctx := context.Background()
	bus, _ := eventbus.New(eventbus.WithLogger(slog.New(slog.DiscardHandler)))
	errRisk := errors.New("over the risk limit")
	trades := eventbustest.RecordFunc(t, eventbus.MustTopic[Trade](bus, "trade.executed"),
		func(_ context.Context, ev eventbus.Event[Trade]) error {
			if ev.Payload.Qty > 5 {
				return errRisk
			}
			return nil
		})

	executeOrders(ctx, bus, Trade{"BTCUSDT", 0.5}, Trade{"SOLUSDT", 10}, Trade{"ETHUSDT", 3})
	_ = bus.Close(ctx)

	st := trades.Subscription().Stats()
	fmt.Println(trades.Len(), "recorded,", st.Delivered, "delivered,", st.Errors, "failed")
	// Output: 3 recorded, 2 delivered, 1 failed
}

// RecordAll records every topic, each event with its own payload type.
func ExampleRecordAll() {
	ctx := context.Background()
	bus, _ := eventbus.New()
	defer bus.Close(ctx)
	all := eventbustest.RecordAll(t, bus, eventbus.Sync())

	_ = eventbus.MustTopic[string](bus, "health.status_changed").Publish(ctx, "DEGRADED")
	_ = eventbus.MustTopic[Trade](bus, "trade.executed").Publish(ctx, Trade{"BTCUSDT", 0.5})

	for _, ev := range all.Events() {
		fmt.Printf("%s %T\n", ev.Topic, ev.Payload)
	}
	// Output:
	// health.status_changed string
	// trade.executed eventbustest_test.Trade
}
