// Package eventbustest helps test code that uses package eventbus.
//
// # Recording events
//
// A Recorder subscribes to a topic and keeps every event it receives, so a
// test can wait for the events its code under test should publish, with a
// deadline, and compare them with go-cmp:
//
//	func TestOrderFlow(t *testing.T) {
//		bus, err := eventbus.New()
//		...
//		trades := eventbustest.Record(t, eventbus.MustTopic[Trade](bus, "trade.executed"))
//
//		placeOrder(bus, ...) // the code under test publishes trades
//
//		trades.WaitN(5*time.Second, 2) // fails the test if 2 trades do not come in time
//		trades.AssertPayloads([]Trade{want1, want2})
//	}
//
// Record unsubscribes when the test ends. The Wait methods wake as events
// arrive rather than polling, and fail the test, listing what did arrive,
// when the deadline passes. AssertPayloads does not wait: call it after a
// Wait method, or after the bus's Close returned nil, at which point every
// accepted event has been handled and nothing more will arrive. RecordFunc
// adds a handler of the test's own, to make chosen deliveries fail or block;
// RecordAll records every topic through eventbus.SubscribeAll.
//
// # Conformance of a backend
//
// RunBus is one suite of the semantics of package eventbus that every
// backend must pass, the in-memory bus and a bus over a broker alike, in the
// manner of testing/slogtest. A backend's test gives it a function that
// makes a bus, and the capabilities in which backends legitimately differ;
// the cases that need a capability the backend lacks are skipped:
//
//	func TestNATSBusConforms(t *testing.T) {
//		eventbustest.RunBus(t, func(t *testing.T) *eventbus.Bus {
//			tr, err := natsbus.New(connect(t))
//			require.NoError(t, err)
//			bus, err := eventbus.New(eventbus.WithTransport(tr))
//			require.NoError(t, err)
//			return bus
//		}, eventbustest.Capabilities{Latest: true, DurableResume: true})
//	}
//
// Every case makes its own bus and topics and closes the bus when it is done;
// see RunBus for what it expects of newBus.
package eventbustest
