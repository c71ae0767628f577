//go:build !race

package eventbus_test

// raceEnabled is true under -race, whose instrumentation allocates.
const raceEnabled = false
