package clock

// haveTicks says ticks reads a counter: the time-stamp counter, with RDTSC.
const haveTicks = true

// ticks returns the processor's time-stamp counter. It is not serialising:
// the read may move a few instructions, which a timestamp does not mind.
func ticks() uint64
