package eventbus

// SetTestHookReplay sets a function that runs before a Sync Replay is
// delivered, and returns a func that removes it.
func SetTestHookReplay(f func()) (reset func()) {
	testHookReplay = f
	return func() { testHookReplay = nil }
}

// SetTestHookRetire sets a function that runs as an unsubscribed
// subscription's counts begin to move into its topic's retired totals, and
// returns a func that removes it.
func SetTestHookRetire(f func()) (reset func()) {
	testHookRetire = f
	return func() { testHookRetire = nil }
}
