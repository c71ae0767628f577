// Package benchmarks compares eventbus with plain Go and with other Go event
// libraries on the same scenarios. It holds only benchmarks: run them with
// run.sh, which also writes the tables and the chart of results/ (see
// README.md).
//
// It is a module of its own so that the eventbus module never depends on the
// libraries it is compared with.
package benchmarks
