package eventbus

// SetTestHookReplay sets a function that runs before a Sync Replay is
// delivered, and returns a func that removes it.
func SetTestHookReplay(f func()) (reset func()) {
	testHookReplay = f
	return func() { testHookReplay = nil }
}
