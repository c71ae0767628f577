package eventbustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/internal/idgen"
)

// defaultTimeout is long on purpose: a passing run never waits for it, and a
// loaded CI machine must not turn a slow delivery into a failure.
const defaultTimeout = 10 * time.Second

// Capabilities tells RunBus what the backend under test can do where
// backends legitimately differ. A case that needs a capability the backend
// lacks is skipped, with the reason. The zero value claims none of them.
type Capabilities struct {
	// Sync is true if Sync subscriptions exist: their handler runs in the
	// publisher's goroutine, with the publisher's ctx, before Publish
	// returns. Only the in-memory bus has them.
	Sync bool

	// Latest is true if Topic.Latest returns the last event published on
	// the topic through this bus.
	Latest bool

	// PublishWait is true if PublishWait waits until every subscription
	// has handled the event and returns their HandlerErrors. A bus over a
	// Transport cannot: the handlers may be in other processes, so its
	// PublishWait returns an error wrapping errors.ErrUnsupported. The
	// suite checks either way that PublishWait returns ErrClosed after
	// Close and a *ValidationError for an invalid payload.
	PublishWait bool

	// DurableResume is true if a subscription with a Name, made again with
	// that Name on a new bus after the first bus was closed, receives the
	// events published in between and none it had handled before. It needs
	// a broker that keeps durable consumers.
	DurableResume bool

	// Timeout bounds every wait for a delivery and every Close. Zero means
	// 10 seconds; a passing run never waits that long.
	Timeout time.Duration
}

// RunBus runs the conformance suite of the eventbus semantics, one subtest
// per case, against the buses newBus returns. A backend passes it when every
// case passes or is skipped for a capability caps says the backend lacks.
// The subtest names state what each case checks, such as "keeps publish
// order per subscription" or "handles every accepted event before Close
// returns".
//
// Each case calls newBus at its start, works on topics of its own whose
// names are unique to the run (so a broker that keeps streams between runs
// does not mix old events in), and closes the bus when it ends, failing if
// Close does not return nil. A case that tests state outliving a bus
// (DurableResume) calls newBus again within the same subtest: the buses
// newBus returns within one subtest must share their backend, such as the
// same broker and stream. newBus should fail t rather than return nil.
//
// The cases run one after another, never in parallel. They wait for
// deliveries on channels with deadlines (Capabilities.Timeout), never by
// sleeping, and assume a handler runs inline only when Capabilities.Sync is
// set, so they hold for a bus over a broker as well as in memory. Handlers
// fail and panic on purpose in some cases; give the bus a quiet logger
// (eventbus.WithLogger) to keep the test output readable.
func RunBus(t *testing.T, newBus func(t *testing.T) *eventbus.Bus, caps Capabilities) {
	t.Helper()
	if caps.Timeout <= 0 {
		caps.Timeout = defaultTimeout
	}
	run := runID()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, n := range c.needs {
				if !n.has(caps) {
					t.Skipf("the backend lacks Capabilities.%s: %s", n.field, n.why)
				}
			}
			h := &harness{
				t:      t,
				caps:   caps,
				newBus: newBus,
				prefix: fmt.Sprintf("eventbustest.%s.case%02d", run, i),
			}
			c.run(t, h)
		})
	}
}

// testCase is one case of RunBus; name reads as a sentence after "the bus".
type testCase struct {
	name  string
	needs []need
	run   func(t *testing.T, h *harness)
}

// cases is the table RunBus runs.
var cases = []testCase{
	{name: "keeps publish order per subscription", run: testOrder},
	{name: "delivers every event to every subscription", run: testFanOut},
	{name: "stamps each published event with a unique ID, its topic and the time", run: testStamp},
	{name: "keeps the ID, time and metadata given to PublishEvent", run: testPublishEvent},
	{name: "gives SubscribeAll the typed payloads of every topic", run: testSubscribeAll},
	{name: "handles every accepted event before Close returns", run: testCloseDrains},
	{name: "refuses Publish and Subscribe after Close with ErrClosed", run: testClosed},
	{name: "stops delivery at Unsubscribe, which is idempotent", run: testUnsubscribe},
	{name: "starts no delivery of queued events after Unsubscribe returns", run: testUnsubscribeQueued},
	{name: "keeps delivering when handlers fail or panic", run: testFailures},
	{name: "returns the joined HandlerErrors from PublishWait", needs: []need{needPublishWait}, run: testPublishWait},
	{name: "refuses an invalid payload with a ValidationError and delivers nothing", run: testValidation},
	{name: "lets a handler publish to its own topic and to others", run: testPublishFromHandler},
	{name: "refuses an invalid topic name with ErrInvalidTopic", run: testTopicNames},
	{name: "binds a topic name to one payload type", run: testTopicType},
	{name: "refuses a nil handler with ErrNilHandler", run: testNilHandler},
	{name: "runs a Sync handler inline before Publish returns", needs: []need{needSync}, run: testSync},
	{name: "returns the last published event from Latest", needs: []need{needLatest}, run: testLatest},
	{name: "resumes a named subscription on a new bus", needs: []need{needDurableResume}, run: testDurableResume},
	{name: "retries a failing handler up to the Retry limit and counts the event once", run: testRetry},
	{name: "dead-letters an event whose handler fails every attempt", run: testDeadLetter},
	{name: "gives a Replay subscription the latest event first", run: testReplay},
}

// need is a capability a case requires.
type need struct {
	field string // the name of the Capabilities field
	why   string // what the case relies on
	has   func(Capabilities) bool
}

var (
	needSync = need{"Sync", "the case checks that a Sync handler runs inline",
		func(c Capabilities) bool { return c.Sync }}
	needLatest = need{"Latest", "the case checks Topic.Latest",
		func(c Capabilities) bool { return c.Latest }}
	needPublishWait = need{"PublishWait", "the case checks that PublishWait waits for the handlers",
		func(c Capabilities) bool { return c.PublishWait }}
	needDurableResume = need{"DurableResume", "the case closes a bus and resumes a named subscription on a new one",
		func(c Capabilities) bool { return c.DurableResume }}
)

// harness is what a case gets besides its *testing.T: buses, unique names
// and the deadline.
type harness struct {
	t      *testing.T
	caps   Capabilities
	newBus func(*testing.T) *eventbus.Bus
	prefix string // unique to the run and the case
}

// bus returns a new bus from newBus that is closed when the case ends.
func (h *harness) bus() *eventbus.Bus {
	h.t.Helper()
	bus := h.newBus(h.t)
	require.NotNil(h.t, bus, "newBus returned nil")
	h.t.Cleanup(func() {
		if err := h.closeWithin(bus); err != nil {
			h.t.Errorf("Close at the end of the case: %v", err)
		}
	})
	return bus
}

// close closes bus now, requiring it to drain within the deadline.
func (h *harness) close(bus *eventbus.Bus) {
	h.t.Helper()
	require.NoError(h.t, h.closeWithin(bus), "Close")
}

// closeWithin closes bus, giving it the case's deadline to drain.
func (h *harness) closeWithin(bus *eventbus.Bus) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.caps.Timeout)
	defer cancel()
	return bus.Close(ctx)
}

// topicName returns a topic name unique to the run and the case.
func (h *harness) topicName(suffix string) string {
	return h.prefix + "." + suffix
}

// subName returns a subscription name unique to the run and the case; it
// uses no dot, as durable consumer names on a broker may not.
func (h *harness) subName(suffix string) string {
	return strings.ReplaceAll(h.prefix, ".", "-") + "-" + suffix
}

// topic returns the topic of bus with topicName(suffix) and payload type T.
func topic[T any](h *harness, bus *eventbus.Bus, suffix string) *eventbus.Topic[T] {
	h.t.Helper()
	tp, err := eventbus.NewTopic[T](bus, h.topicName(suffix))
	require.NoError(h.t, err, "NewTopic")
	return tp
}

// runID returns a random token that keeps the names of one run of RunBus
// apart from those of earlier runs against the same broker.
func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// newID returns a fresh UUIDv7, for events whose ID the case sets itself;
// it must be unique across runs, as a broker may de-duplicate by ID: a new
// random source of the bus's own generator makes it.
func newID() eventbus.ID {
	return idgen.NewRoot().Derive(0).Next(time.Now().UnixMilli())
}
