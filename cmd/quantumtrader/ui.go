package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quantumtrader/eventbus"
)

// viewMode is how the live view shows itself.
type viewMode int

const (
	viewQuiet    viewMode = iota // -quiet: nothing until the summary
	viewPlain                    // not a terminal: a line per second
	viewTerminal                 // a table redrawn in place
)

// view is the live view of a run. On a terminal it redraws a table of the
// topics in place, under the timeline of the session and the bus's log
// lines, which scroll above it; elsewhere it prints the timeline and one
// line of figures per second.
type view struct {
	w    io.Writer
	mode viewMode
	cfg  config
	logs *heldLines // the bus's log lines, held while the table is drawn

	height    int // lines of the last table drawn
	published map[string]uint64
	lastFrame time.Time
	timeline  int // entries printed so far
}

func newView(w io.Writer, cfg config) *view {
	v := &view{w: w, cfg: cfg, mode: viewPlain, published: map[string]uint64{}}
	switch {
	case cfg.quiet:
		v.mode = viewQuiet
	case isTerminal(w):
		v.mode = viewTerminal
		v.logs = &heldLines{}
	}
	return v
}

// isTerminal reports whether w is a terminal that understands ANSI escapes.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// logOutput returns where the bus should log: stderr, except while a table
// is redrawn in place, which a stray line would tear.
func (v *view) logOutput(stderr io.Writer) io.Writer {
	if v.logs == nil {
		return stderr
	}
	v.logs.out = stderr
	return v.logs
}

// run shows the live view until ctx ends, then draws it one last time,
// with the rates averaged over the whole run.
func (v *view) run(ctx context.Context, s *system) {
	if v.mode == viewQuiet {
		return
	}
	interval := time.Second
	if v.mode == viewTerminal {
		interval = 200 * time.Millisecond
		fmt.Fprint(v.w, "\x1b[?25l")       // hide the cursor while redrawing
		defer fmt.Fprint(v.w, "\x1b[?25h") // and show it again
		defer v.logs.release()
	}
	v.lastFrame = s.start
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			v.frame(s, true)
			return
		case <-t.C:
			v.frame(s, false)
		}
	}
}

// frame draws the view once; the last frame shows the rates of the whole
// run rather than of the last interval.
func (v *view) frame(s *system, last bool) {
	now := time.Now()
	dt := now.Sub(v.lastFrame).Seconds()
	v.lastFrame = now
	topics := s.bus.Topics()
	if last {
		dt = now.Sub(s.start).Seconds()
		clear(v.published)
	}
	var b bytes.Buffer
	if v.mode == viewTerminal && v.height > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA\x1b[J", v.height) // back to the top of the table, and clear below
	}
	for _, e := range s.analytics.timelineFrom(v.timeline) {
		fmt.Fprintf(&b, "%6.2fs  %-22s %s\n", e.At, e.Topic, e.Text)
		v.timeline++
	}
	if v.logs != nil {
		// The log lines go to stderr: on a terminal, they scroll with the
		// timeline above the table.
		v.w.Write(b.Bytes())
		b.Reset()
		v.logs.flush()
	}
	elapsed := min(now.Sub(s.start), v.cfg.duration)
	// The events counted on each topic since the last frame.
	counts := make([]uint64, len(topics))
	for i, t := range topics {
		n := v.counted(t)
		counts[i] = n - v.published[t.Name]
		v.published[t.Name] = n
	}
	// The state of the trading book is the consumers': a producers'
	// process shows its publishing only.
	book := v.cfg.role != roleProducers
	rateName := "events/s"
	if v.cfg.role == roleConsumers {
		rateName = "handled/s"
	}
	if v.mode == viewPlain {
		var rate, delivered uint64
		queue := 0
		for i, t := range topics {
			rate += counts[i]
			delivered += t.Delivered
			queue += t.QueueSize
		}
		if last {
			b.WriteString("end: ") // with the rate averaged over the run
		}
		fmt.Fprintf(&b, "t=%.1fs %s=%.0f delivered=%d queue=%d", elapsed.Seconds(), rateName, float64(rate)/dt, delivered, queue)
		if book {
			h, ex, mode := s.bookState()
			fmt.Fprintf(&b, " equity=%.0f drawdown=%.1f%% health=%s policy=%s buys=%d open=%d",
				ex.Equity, 100*h.Drawdown, h.Status, mode, ex.Buys, ex.OpenLots)
		}
		b.WriteString("\n")
		v.w.Write(b.Bytes())
		return
	}
	lines := 0
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format+"\n", args...)
		lines++
	}
	// Every line of the table must fit in 80 columns: a line the terminal
	// wraps would throw out the count of lines to go back up.
	line("")
	line("quantumtrader · seed %d · %s  %s  %.1fs / %.1fs",
		v.cfg.seed, rateText(v.cfg.rate), bar(elapsed.Seconds()/v.cfg.duration.Seconds(), 20), elapsed.Seconds(), v.cfg.duration.Seconds())
	rateHeader := strings.ToUpper(rateName)
	line("%-22s %9s %10s %10s %6s %9s", "TOPIC", rateHeader, "PUBLISHED", "DELIVERED", "QUEUE", "P99")
	for i, t := range topics {
		rate := float64(counts[i]) / dt
		line("%-22s %9s %10s %10s %6d %9s", t.Name, commas(uint64(math.Round(rate))), commas(t.Published),
			commas(t.Delivered), t.QueueSize, latency(t.LatencyP99))
	}
	if book {
		h, ex, mode := s.bookState()
		line("health %s · policy %s · equity %s (drawdown %.1f%%) · %s buys",
			h.Status, mode, money(ex.Equity), 100*h.Drawdown, commas(ex.Buys))
	} else {
		line("producers: the trading book is in the consumers' process")
	}
	v.height = lines
	v.w.Write(b.Bytes())
}

// bookState returns what the live view shows of the trading book: the health,
// the Executor's state and the risk mode in force ("-" before the first
// policy).
func (s *system) bookState() (HealthState, ExecutorState, string) {
	h, ex := s.health.state(), s.exec.state()
	mode := string(s.risk.mode())
	if mode == "" {
		mode = "-"
	}
	return h, ex, mode
}

// counted is what the rates of the view count: the events published, or,
// in the consumers role, where the events are published elsewhere, those
// delivered.
func (v *view) counted(t eventbus.TopicStats) uint64 {
	if v.cfg.role == roleConsumers {
		return t.Delivered
	}
	return t.Published
}

func rateText(rate int) string {
	if rate == 0 {
		return "ticks flat out"
	}
	return commas(uint64(rate)) + " ticks/s"
}

// bar is a progress bar of width cells, f of them full.
func bar(f float64, width int) string {
	full := int(math.Round(min(max(f, 0), 1) * float64(width)))
	return "[" + strings.Repeat("█", full) + strings.Repeat("░", width-full) + "]"
}

// heldLines holds what is written to it until the view flushes it to out
// between two drawings of the table, and after release passes it straight
// on.
type heldLines struct {
	mu       sync.Mutex
	buf      []byte
	out      io.Writer
	released bool
}

func (h *heldLines) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return h.out.Write(p)
	}
	h.buf = append(h.buf, p...)
	return len(p), nil
}

// flush writes out the complete lines held.
func (h *heldLines) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := bytes.LastIndexByte(h.buf, '\n'); i >= 0 {
		h.out.Write(h.buf[:i+1])
		h.buf = h.buf[i+1:]
	}
}

// release writes out what is held and stops holding.
func (h *heldLines) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released = true
	if len(h.buf) > 0 {
		h.out.Write(h.buf)
		h.buf = nil
	}
}

// writeJSON writes the summary as indented JSON.
func writeJSON(w io.Writer, sum Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sum)
}

// writeSummary writes the summary as text: the run, a table per topic and
// per subscription, each component's final state, the scenario and the
// delivery check.
func writeSummary(w io.Writer, s Summary) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	how := "ran"
	if s.Interrupted {
		how = "interrupted after"
	}
	p("")
	p("Quantum Trader %s %.1fs (seed %d, %s, %s): %s events published, %s delivered, %s, %s dead-lettered",
		how, s.Elapsed, s.Seed, rateText(s.Rate), whereText(s), commas(s.Bus.Published), commas(s.Bus.Delivered),
		count(s.Bus.Retries, "retry", "retries"), commas(s.Bus.DeadLettered))
	p("")
	p("%-22s %10s %9s %10s %7s %4s %10s %9s %9s", "TOPIC", "PUBLISHED", "EVENTS/S", "DELIVERED", "RETRIES", "DEAD", "HIGH-WATER", "P50", "P99")
	for _, t := range s.Topics {
		p("%-22s %10s %9s %10s %7d %4d %10d %9s %9s", t.Name, commas(t.Published), commas(uint64(math.Round(t.PerSecond))),
			commas(t.Delivered), t.Retries, t.DeadLettered, t.HighWater, latency(usec(t.P50)), latency(usec(t.P99)))
	}
	p("")
	p("%-18s %-22s %10s %10s %7s %4s %7s %10s %9s", "SUBSCRIBER", "TOPIC", "EXPECTED", "DELIVERED", "RETRIES", "DEAD", "DROPPED", "HIGH-WATER", "P99")
	for _, r := range s.Subscriptions {
		expected := commas(r.Expected)
		if s.Delivery.Check == checkHandled || s.Delivery.Check == checkStored {
			expected = "-" // published by another process
		}
		p("%-18s %-22s %10s %10s %7d %4d %7d %10d %9s", r.Component, r.Topic, expected, commas(r.Delivered),
			r.Retries, r.DeadLettered, r.Dropped, r.HighWater, latency(usec(r.P99)))
	}
	p("")
	for _, c := range s.Components.named() {
		if c.runsIn(s.Role) {
			p("%-20s %s", c.name, c.state)
		}
	}
	p("")
	p("Scenario: %s", scenarioText(s.Scenario, s.Role))
	d := s.Delivery
	switch {
	case !d.OK:
		p("Delivery check: FAIL, events were lost:")
		for _, problem := range d.Problems {
			p("  %s", problem)
		}
	case d.Check == checkExact:
		p("Delivery check: PASS, every published event reached every subscriber: %d subscriptions owed %s deliveries; %s handled, %s dead-lettered after failing every attempt",
			d.Subscriptions, commas(d.Expected), commas(d.Delivered), commas(d.DeadLettered))
	case d.Check == checkAtLeastOnce:
		more := ""
		if d.Delivered+d.DeadLettered > d.Expected {
			more = " (more than owed: redeliveries, or events a durable subscription kept from an earlier run)"
		}
		p("Delivery check: PASS, at least once over NATS, every subscription handled every event this process published on its topics: %d subscriptions owed %s deliveries; %s handled, %s dead-lettered after failing every attempt%s",
			d.Subscriptions, commas(d.Expected), commas(d.Delivered), commas(d.DeadLettered), more)
	case d.Check == checkHandled:
		p("Delivery check: PASS for what this process received: %d subscriptions handled %s deliveries and dead-lettered %s after failing every attempt; none dropped, and Close drained what the broker held for them",
			d.Subscriptions, commas(d.Delivered), commas(d.DeadLettered))
		p("Loss check: SKIPPED in the consumers role: %s", d.Skipped)
	case d.Check == checkStored:
		p("Delivery check: PASS for what this process published and received: the stream stored each of the %s events published, none reported failed; %d subscriptions handled %s deliveries, none dropped",
			commas(s.Bus.Published), d.Subscriptions, commas(d.Delivered))
		p("Loss check: SKIPPED in the producers role: %s", d.Skipped)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// whereText says where the events went.
func whereText(s Summary) string {
	if s.NATS == "" {
		return "in memory"
	}
	return fmt.Sprintf("over NATS at %s, stream %s, role %s", s.NATS, s.Stream, s.Role)
}

func scenarioText(s Scenario, r role) string {
	switch r {
	case roleProducers:
		return "played out in the consumers' process: this one runs the market, the strategies and the models"
	case roleConsumers:
		return "as seen from the consumers, in seconds since this process started: " + reactionText(s, "", "")
	}
	if s.MarketEnd < s.CrashStart {
		return fmt.Sprintf("the market stopped at %.2fs, before the crash due at %.2fs", s.MarketEnd, s.CrashStart)
	}
	return fmt.Sprintf("crash of %.0f%% at %.2fs", 100*s.CrashDepth, s.CrashStart) + reactionText(s, " → ", ", ")
}

// reactionText tells what followed the crash: health, policy, trading.
// critical or calm leads the health part, as it follows a crash or not.
func reactionText(s Scenario, critical, calm string) string {
	var text string
	if s.CriticalAt > 0 {
		text = fmt.Sprintf("%shealth CRITICAL at %.2fs (worst drawdown %.1f%%)", critical, s.CriticalAt, 100*s.MaxDrawdown)
	} else {
		text = fmt.Sprintf("%shealth never CRITICAL (worst drawdown %.1f%%)", calm, 100*s.MaxDrawdown)
	}
	if s.DefensiveAt > 0 {
		text += fmt.Sprintf(" → policy DEFENSIVE at %.2fs", s.DefensiveAt)
	}
	text += fmt.Sprintf(" → Executor bought %.1f/s while NORMAL, %.1f/s while DEFENSIVE", s.BuysPerSecondNormal, s.BuysPerSecondDefensive)
	if s.Happened {
		return text + " (as designed)"
	}
	return text + " (the scenario did not complete)"
}

// commas writes n with thousands separators.
func commas(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// count writes n and the noun in the singular or the plural.
func count(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return commas(n) + " " + many
}

// money writes an amount of USDT, rounded to the unit, with separators.
func money(x float64) string {
	sign := ""
	if x < 0 {
		sign, x = "-", -x
	}
	return sign + commas(uint64(math.Round(x)))
}

// list writes a list of names, or "none".
func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " ")
}

func usec(us float64) time.Duration { return time.Duration(us * float64(time.Microsecond)) }

// latency writes a handler latency to about three digits, or "-" for none.
func latency(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
