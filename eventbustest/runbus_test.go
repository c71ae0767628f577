package eventbustest_test

import (
	"errors"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"

	"github.com/quantumtrader/eventbus/eventbustest"
)

func TestInMemoryBusConforms(t *testing.T) {
	eventbustest.RunBus(t, newMemoryBus, eventbustest.Capabilities{
		Sync:        true,
		Latest:      true,
		PublishWait: true,
		// DurableResume: nothing outlives an in-memory bus.
	})
}

func TestRunBusSkipsTheCasesABackendLacksTheCapabilitiesFor(t *testing.T) {
	// casesRun returns the names of the cases that got as far as newBus.
	casesRun := func(name string, caps eventbustest.Capabilities) map[string]bool {
		ran := map[string]bool{}
		t.Run(name, func(t *testing.T) {
			eventbustest.RunBus(t, func(t *testing.T) *eventbus.Bus {
				ran[path.Base(t.Name())] = true
				return newMemoryBus(t)
			}, caps)
		})
		return ran
	}
	all := casesRun("with every capability of memory", eventbustest.Capabilities{Sync: true, Latest: true, PublishWait: true})
	none := casesRun("with no capability", eventbustest.Capabilities{})

	var skipped []string
	for name := range all {
		if !none[name] {
			skipped = append(skipped, name)
		}
	}
	slices.Sort(skipped)
	assert.Equal(t, []string{
		"returns_the_joined_HandlerErrors_from_PublishWait",
		"returns_the_last_published_event_from_Latest",
		"runs_a_Sync_handler_inline_before_Publish_returns",
	}, skipped)
	for name := range none {
		assert.True(t, all[name], "%s ran without capabilities but not with them", name)
	}
}

// TestRunBusFailsAgainstAClosedBus shows that the cases are not vacuous:
// against a bus that is closed before the case starts, every case that
// publishes or subscribes must fail, and only the three that check errors
// of NewTopic and Subscribe may pass. The suite runs in a child process,
// since its failing subtests would fail this test too.
func TestRunBusFailsAgainstAClosedBus(t *testing.T) {
	if os.Getenv("EVENTBUSTEST_CHILD") == "closed-bus" {
		// A case that waits instead of failing at once waits this long.
		// Under -short (passed on by the parent), the same suite runs with
		// a shorter deadline: the same check, only bounded lower.
		timeout := time.Second
		if testing.Short() {
			timeout = 100 * time.Millisecond
		}
		eventbustest.RunBus(t, func(t *testing.T) *eventbus.Bus {
			bus := newMemoryBus(t)
			closeBus(t, bus)
			return bus
		}, eventbustest.Capabilities{Sync: true, Latest: true, PublishWait: true, Timeout: timeout})
		return
	}

	args := []string{"-test.run=^" + t.Name() + "$", "-test.v"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EVENTBUSTEST_CHILD=closed-bus")
	out, err := cmd.CombinedOutput()
	_, failed := errors.AsType[*exec.ExitError](err)
	require.True(t, failed, "the suite did not fail against a closed bus (err %v):\n%s", err, out)

	results := map[string][]string{}
	for _, m := range regexp.MustCompile(`(?m)^    --- (PASS|FAIL|SKIP): \S+/(\S+) `).FindAllStringSubmatch(string(out), -1) {
		results[m[1]] = append(results[m[1]], m[2])
	}
	assert.ElementsMatch(t, []string{
		"refuses_an_invalid_topic_name_with_ErrInvalidTopic",
		"binds_a_topic_name_to_one_payload_type",
		"refuses_a_nil_handler_with_ErrNilHandler",
	}, results["PASS"], "the cases that passed against a closed bus")
	assert.Equal(t, []string{"resumes_a_named_subscription_on_a_new_bus"}, results["SKIP"])
	assert.NotEmpty(t, results["FAIL"], "every other case failed:\n%s", out)
}
