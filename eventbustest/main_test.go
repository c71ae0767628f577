package eventbustest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a bus, a Recorder or a case of RunBus leaves a
// goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
