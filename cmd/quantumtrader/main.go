// Quantumtrader runs the trading system of Quantum Trader on the in-memory
// event bus: a simulated market feeds the Opportunity Ranker and the
// Strategy Runtime, the Executor trades, the Health Monitor watches the
// drawdown, and the Meta Strategy Controller (MSC AI) turns the whole system
// defensive when a market crash drives the health to CRITICAL. Every
// component talks to the others through the typed topics of package
// eventbus.
//
// While it runs it shows, per topic, the events per second, the deliveries,
// the queue depth and the handler latency; at the end it prints a summary
// per topic, per subscriber and per component, and checks that every
// published event reached every subscriber. It exits with status 1 if one
// did not, and 2 for a bad flag.
//
// Usage:
//
//	go run ./cmd/quantumtrader [flags]
//
// The flags are:
//
//	-duration d   how long the market runs (default 10s)
//	-rate n       market ticks per second to aim for; 0 means as fast as the
//	              subscribers keep up (default 5000)
//	-seed n       seed of the market, the strategies and the flaky webhook (default 1)
//	-json         print the summary as JSON on stdout (the live view goes to stderr)
//	-quiet        no live view, only the summary
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal ends the run and lets it drain and report; restoring
	// the default handling then lets a second Ctrl-C end a drain that hangs.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// errUsage marks a bad command line; the flag package or parseFlags has
// already printed the problem and the usage.
var errUsage = errors.New("bad usage")

// errLoss is returned when the delivery check found an event that did not
// reach a subscriber.
var errLoss = errors.New("delivery check failed: events were lost")

// exitCode maps run's error to the process status: 2 for a bad command
// line, as the flag package does, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "quantumtrader:", err)
	return 1
}

// config is the command line.
type config struct {
	duration time.Duration
	rate     int
	seed     uint64
	json     bool
	quiet    bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("quantumtrader", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long the market runs")
	fs.IntVar(&cfg.rate, "rate", 5000, "market ticks per second to aim for; 0 means as fast as the subscribers keep up")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the market, the strategies and the flaky webhook")
	fs.BoolVar(&cfg.json, "json", false, "print the summary as JSON on stdout (the live view goes to stderr)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "no live view, only the summary")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: quantumtrader [flags]

Runs the trading system of Quantum Trader on the in-memory event bus, shows
live figures per topic, and checks at the end that every published event
reached every subscriber (exit status 1 if not).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, fmt.Errorf("%w: %v", errUsage, err) // fs printed it with the usage
	}
	var problem string
	switch {
	case fs.NArg() > 0:
		problem = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case cfg.duration <= 0:
		problem = fmt.Sprintf("-duration %v: must be positive", cfg.duration)
	case cfg.rate < 0:
		problem = fmt.Sprintf("-rate %d: must be 0 (as fast as possible) or positive", cfg.rate)
	}
	if problem != "" {
		fmt.Fprintln(stderr, problem)
		fs.Usage()
		return cfg, fmt.Errorf("%w: %s", errUsage, problem)
	}
	return cfg, nil
}

// closeTimeout bounds the drain at the end of a run. The queues hold at
// most a few seconds of work, so a drain that takes longer is stuck, and
// the check then reports the undelivered events.
const closeTimeout = 10 * time.Second

// run is the whole program: it runs the trading system for cfg.duration or
// until ctx ends (Ctrl-C), shows the live view, drains the bus, prints the
// summary and returns errLoss if an event did not reach a subscriber. Every
// goroutine it starts has ended when it returns.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	live := stdout
	if cfg.json {
		live = stderr // stdout carries the JSON alone
	}
	view := newView(live, cfg)
	bus, err := newBus(view.logOutput(stderr))
	if err != nil {
		return err
	}
	sys := newSystem(bus, cfg)
	consumers, err := sys.startConsumers()
	if err != nil {
		_ = bus.Close(ctx)
		return fmt.Errorf("subscribing: %w", err)
	}

	runCtx, stopRun := context.WithTimeout(ctx, cfg.duration)
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		view.run(runCtx, sys)
	}()
	perr := sys.runProducers(runCtx)
	stopRun()
	<-viewDone
	elapsed := time.Since(sys.start)

	// Drain even when ctx was cancelled by Ctrl-C: the summary must count
	// every accepted event. If settling times out, Close still drains, and
	// what it refuses shows in the summary.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	_ = sys.settle(closeCtx)
	cerr := bus.Close(closeCtx)
	cancel()

	sum := sys.summarize(consumers, elapsed, ctx.Err() != nil, cerr)
	if cfg.json {
		err = writeJSON(stdout, sum)
	} else {
		err = writeSummary(stdout, sum)
	}
	switch {
	case perr != nil:
		return perr
	case err != nil:
		return err
	case !sum.Delivery.OK:
		return errLoss
	}
	return nil
}
