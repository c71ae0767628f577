package natsbus_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// The processes of TestGroupSurvivesAConsumerKilledMidStream are this test
// binary run again, with the environment saying which role to play (see
// TestMain) and where.
const (
	envRole    = "NATSBUS_TEST_ROLE" // "producer" or "consumer"
	envURL     = "NATSBUS_TEST_URL"
	envStream  = "NATSBUS_TEST_STREAM"
	envPrefix  = "NATSBUS_TEST_PREFIX"
	envEvents  = "NATSBUS_TEST_EVENTS"   // how many events the producer publishes
	envAckWait = "NATSBUS_TEST_ACK_WAIT" // eventbus.AckWait of the group's subscriptions, as time.ParseDuration reads it
)

// The group's settings in every consumer process.
const (
	processGroup    = "workers"
	processInFlight = 4  // Concurrency of each member
	processWindow   = 64 // the producer's WithAsyncPublish window
)

// order is the payload the processes share.
type order struct {
	N int `json:"n"`
}

// runRole plays the role named by $NATSBUS_TEST_ROLE and returns the exit
// status. A consumer prints "ready" once subscribed, then "handled <id>
// <n>" as each event's handler starts (so before the event is
// acknowledged), until SIGTERM, when it closes its bus and prints
// "closed". The producer prints "published <count>" when done.
func runRole(role string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fail := func(err error) int {
		logger.Error("natsbus test process failed", "role", role, "err", err)
		return 1
	}
	nc, err := nats.Connect(os.Getenv(envURL), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	ackWait, err := time.ParseDuration(os.Getenv(envAckWait))
	if err != nil {
		return fail(err)
	}
	opts := []natsbus.Option{natsbus.WithStream(os.Getenv(envStream)), natsbus.WithSubjectPrefix(os.Getenv(envPrefix))}
	if role == "producer" {
		opts = append(opts, natsbus.WithAsyncPublish(processWindow))
	}
	tr, err := natsbus.New(nc, opts...)
	if err != nil {
		return fail(err)
	}
	bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(logger))
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	orders := eventbus.MustTopic[order](bus, "orders")
	switch role {
	case "producer":
		n, _ := strconv.Atoi(os.Getenv(envEvents))
		for i := range n {
			if err := orders.Publish(ctx, order{N: i}); err != nil {
				return fail(err)
			}
		}
		fmt.Printf("published %d\n", n)
	case "consumer":
		var mu sync.Mutex
		_, err := orders.Subscribe(func(_ context.Context, ev eventbus.Event[order]) error {
			mu.Lock()
			_, err := fmt.Printf("handled %s %d\n", ev.ID, ev.Payload.N)
			mu.Unlock()
			// The rest of the work: a process killed now has handled the
			// event but not acknowledged it, which is what at-least-once
			// delivery repeats.
			time.Sleep(time.Millisecond)
			return err
		}, eventbus.Group(processGroup), eventbus.Concurrency(processInFlight), eventbus.AckWait(ackWait))
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		<-ctx.Done()
	default:
		return fail(fmt.Errorf("unknown role %q", role))
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bus.Close(closeCtx); err != nil {
		return fail(err)
	}
	if n := bus.Stats().PublishFailed; n > 0 {
		return fail(fmt.Errorf("%d publishes were not stored", n))
	}
	fmt.Println("closed")
	return 0
}

// process is a child process of the test playing a role.
type process struct {
	name   string
	cmd    *exec.Cmd
	stderr syncBuffer
	read   sync.WaitGroup // the goroutine reading its stdout
}

// line is one line a process printed.
type line struct {
	from string
	text string
}

// startProcess starts this test binary again in role, sending what it
// prints to lines. It is killed at the end of the test if still running.
func startProcess(t *testing.T, name, role string, env []string, lines chan<- line) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(os.Args[0], "-test.run=^$")}
	p.cmd.Env = append(append(os.Environ(), envRole+"="+role), env...)
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	p.read.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- line{from: name, text: sc.Text()}
		}
		_, _ = io.Copy(io.Discard, stdout)
	})
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			p.wait()
		}
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", name, p.stderr.String())
		}
	})
	return p
}

// wait waits for the process to exit, having read all it printed.
func (p *process) wait() error {
	p.read.Wait()
	return p.cmd.Wait()
}

// TestGroupSurvivesAConsumerKilledMidStream runs a producer (publishing
// asynchronously) and two consumer processes of one group on a stream,
// kills one consumer with SIGKILL while events flow and starts it again
// only once the other has gone on handling events the killed one never
// saw: a dead member does not stop the group. Every event is handled, and
// only events the killed process had handled (not acknowledged) are
// handled twice: at most what its receiver could hold, a batch fetched
// ahead and its handlers' events.
//
// With -short the stream is shorter and the AckWait, after which the
// broker offers again what the killed process held, too: the same check,
// in a fraction of the time.
func TestGroupSurvivesAConsumerKilledMidStream(t *testing.T) {
	t.Parallel()
	events, killAfter, survivorGoesOn, ackWait := 3000, 300, 200, time.Second
	if testing.Short() {
		events, killAfter, survivorGoesOn, ackWait = 600, 60, 60, 500*time.Millisecond
	}
	srv := natstest.Start(t)
	names := srv.Names(t)
	env := []string{envURL + "=" + srv.URL(), envStream + "=" + names.Stream, envPrefix + "=" + names.SubjectPrefix,
		envEvents + "=" + strconv.Itoa(events), envAckWait + "=" + ackWait.String()}
	lines := make(chan line, 4*events) // never full: a reader that blocked would hold its process's exit
	deadline := time.After(2 * waitFor)

	handled := map[string][]int{}          // process: payloads handled, in order
	byID := map[eventbus.ID][]string{}     // event: processes that handled it, once per call
	payloadOf := map[eventbus.ID]int{}     // event: its payload
	covered := make(map[int]bool, events)  // payloads handled by anyone
	status := map[string]map[string]bool{} // process: lines other than "handled" it printed
	// await reads lines until done says the state is reached.
	await := func(what string, done func() bool) {
		t.Helper()
		for !done() {
			select {
			case l := <-lines:
				if rest, ok := strings.CutPrefix(l.text, "handled "); ok {
					idText, nText, _ := strings.Cut(rest, " ")
					id, err := eventbus.ParseID(idText)
					require.NoError(t, err, "line %q of %s", l.text, l.from)
					n, err := strconv.Atoi(nText)
					require.NoError(t, err, "line %q of %s", l.text, l.from)
					handled[l.from] = append(handled[l.from], n)
					byID[id] = append(byID[id], l.from)
					payloadOf[id] = n
					covered[n] = true
					continue
				}
				if status[l.from] == nil {
					status[l.from] = map[string]bool{}
				}
				status[l.from][l.text] = true
			case <-deadline:
				t.Fatalf("timed out waiting until %s; %d of %d events handled", what, len(covered), events)
			}
		}
	}
	printed := func(from, text string) func() bool {
		return func() bool { return status[from][text] }
	}

	a := startProcess(t, "A", "consumer", env, lines)
	await("A is ready", printed("A", "ready"))
	b := startProcess(t, "B", "consumer", env, lines)
	await("B is ready", printed("B", "ready"))
	producer := startProcess(t, "producer", "producer", env, lines)

	await("A handled a share of the stream", func() bool { return len(handled["A"]) >= killAfter })
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	_ = a.wait() // killed: its status says so
	inFlight := ackPending(t, srv, names)
	handledByA := len(handled["A"])
	seenByA := make(map[int]bool, handledByA)
	for _, n := range handled["A"] {
		seenByA[n] = true
	}
	byBBeforeKill := len(handled["B"])
	await("B goes on handling events while A is dead", func() bool {
		fresh := 0
		for _, n := range handled["B"][byBBeforeKill:] {
			if !seenByA[n] {
				fresh++
			}
		}
		return fresh >= survivorGoesOn
	})
	byBWhileDead := len(handled["B"]) - byBBeforeKill
	a2 := startProcess(t, "A2", "consumer", env, lines)
	await("A2 is ready", printed("A2", "ready"))

	await("the producer is done", printed("producer", fmt.Sprintf("published %d", events)))
	require.NoError(t, producer.wait())
	await("every event is handled", func() bool { return len(covered) == events })
	for _, p := range []*process{b, a2} {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		await(p.name+" closed its bus", printed(p.name, "closed"))
		require.NoError(t, p.wait(), "%s exits cleanly", p.name)
	}
	close(lines)
	for l := range lines { // nothing more may come, but count it if it did
		if strings.HasPrefix(l.text, "handled ") {
			t.Errorf("%s handled an event after its bus was closed: %s", l.from, l.text)
		}
	}

	var dups []string
	for id, who := range byID {
		if len(who) > 1 {
			dups = append(dups, fmt.Sprintf("%d by %s", payloadOf[id], strings.Join(who, ", ")))
			assert.Equal(t, "A", who[0], "event %d: only what the killed process had handled comes again", payloadOf[id])
		}
	}
	t.Logf("%d events; handled by A %d (then killed), B %d (%d of them while A was dead), A again %d; %d deliveries awaited acknowledgement right after the kill; %d handled twice: %v",
		events, handledByA, len(handled["B"]), byBWhileDead, len(handled["A2"]), inFlight, len(dups), dups)
	assert.Len(t, covered, events, "every event was handled: 0 lost")
	assert.LessOrEqual(t, len(dups), natsbus.DefaultPullBatch+processInFlight,
		"duplicates are bounded by what the killed process could hold")
}

// ackPending is the group consumer's count of deliveries handed out and
// not acknowledged.
func ackPending(t *testing.T, srv *natstest.Server, names natstest.Names) int {
	t.Helper()
	js, err := jetstream.New(srv.Connect(t))
	require.NoError(t, err)
	s, err := js.Stream(t.Context(), names.Stream)
	require.NoError(t, err)
	lister := s.ListConsumers(t.Context())
	total := 0
	for info := range lister.Info() {
		total += info.NumAckPending
	}
	require.NoError(t, lister.Err())
	return total
}
