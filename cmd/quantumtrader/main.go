// Quantumtrader runs the trading system of Quantum Trader on the event
// bus: a simulated market feeds the Opportunity Ranker and the Strategy
// Runtime, the Executor trades, the Health Monitor watches the drawdown,
// and the Meta Strategy Controller (MSC AI) turns the whole system
// defensive when a market crash drives the health to CRITICAL. Every
// component talks to the others through the typed topics of package
// eventbus, in memory by default, or over NATS JetStream with -nats, where
// -role can split the producers and the consumers into separate processes
// without changing a line of the components.
//
// While it runs it shows, per topic, the events per second, the deliveries,
// the queue depth and the handler latency; at the end it prints a summary
// per topic, per subscriber and per component, and a delivery check. It
// exits with status 1 if the check fails, and 2 for a bad flag.
//
// What the delivery check checks depends on where the events went:
//
//   - in memory (-role all): every subscription received exactly every
//     event published on its topics, each handled or dead-lettered;
//   - over NATS, -role all: every subscription handled at least every event
//     this process published on its topics (delivery is at least once, and
//     other processes on the stream, or a durable subscription's backlog
//     from an earlier run, may add more);
//   - -role consumers: the events were published by another process, so
//     the count owed is unknown here and the loss check is skipped, with a
//     line saying so; it checks that every delivery was handled or
//     dead-lettered, nothing dropped, and Close drained the backlog;
//   - -role producers: the same for its one subscription (the Strategy
//     Generator follows the trades), and the stream stored every event it
//     published (Publish returned nil); the loss check is the consumers'.
//
// The producers are the market feed, the Strategy Generator and the
// Continuous Learning Manager, the sources of the system's events; the
// consumers are the other components, the MSC AI included, since it
// decides on what it hears.
//
// Usage:
//
//	go run ./cmd/quantumtrader [flags]
//
// The flags are:
//
//	-duration d   how long the market runs; with -role consumers, how long
//	              to consume (default 10s)
//	-rate n       market ticks per second to aim for; 0 means as fast as the
//	              subscribers keep up (default 5000, in memory and over NATS)
//	-seed n       seed of the market, the strategies and the flaky webhook (default 1)
//	-json         print the summary as JSON on stdout (the live view goes to stderr)
//	-quiet        no live view, only the summary
//	-nats URL     run over NATS JetStream at URL, e.g. nats://127.0.0.1:4222
//	-stream name  with -nats: the JetStream stream (default QUANTUMTRADER)
//	-prefix p     with -nats: the subject prefix of the topics (default quantumtrader)
//	-role r       all, producers or consumers (default all); producers and
//	              consumers need -nats
//	-metrics addr serve Prometheus metrics of the bus at http://addr/metrics
//	              while it runs, e.g. :9090, or 127.0.0.1:0 for a free port
//	              (the URL is printed on stderr); empty means off (default)
//
// Two terminals, one system:
//
//	go run ./cmd/quantumtrader -nats nats://127.0.0.1:4222 -role consumers -duration 1m
//	go run ./cmd/quantumtrader -nats nats://127.0.0.1:4222 -role producers -duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
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
// already printed the problem and the usage (listenMetrics only the
// problem: its address was well formed but could not be had).
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
	natsURL  string // "" for the in-memory bus
	stream   string
	prefix   string
	role     role
	metrics  string // the -metrics listen address; "" for none
}

// role is which part of the system a process runs.
type role string

const (
	roleAll       role = "all"       // producers and consumers
	roleProducers role = "producers" // the market feed and the other components that start events
	roleConsumers role = "consumers" // the subscriptions, and what their handlers publish
)

// The defaults of the flags.
const (
	defaultRate   = 5000
	defaultStream = "QUANTUMTRADER"
	defaultPrefix = "quantumtrader"
)

var (
	streamName    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	subjectPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("quantumtrader", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long the market runs; with -role consumers, how long to consume")
	fs.IntVar(&cfg.rate, "rate", defaultRate, "market ticks per second to aim for; 0 means as fast as the subscribers keep up")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the market, the strategies and the flaky webhook")
	fs.BoolVar(&cfg.json, "json", false, "print the summary as JSON on stdout (the live view goes to stderr)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "no live view, only the summary")
	fs.StringVar(&cfg.natsURL, "nats", "", "run over NATS JetStream at this `URL`, e.g. nats://127.0.0.1:4222, instead of in memory")
	fs.StringVar(&cfg.stream, "stream", defaultStream, "with -nats: the JetStream `stream` that holds the events")
	fs.StringVar(&cfg.prefix, "prefix", defaultPrefix, "with -nats: the subject `prefix` of the topics")
	fs.StringVar(&cfg.metrics, "metrics", "", "serve Prometheus metrics of the bus at http://`addr`/metrics while it runs, e.g. :9090, or 127.0.0.1:0 for a free port (printed on stderr); empty: off")
	fs.StringVar((*string)(&cfg.role), "role", string(roleAll), "which part of the system runs here: all, producers or consumers (producers and consumers need -nats); the `role` runs until -duration or Ctrl-C")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: quantumtrader [flags]

Runs the trading system of Quantum Trader on the event bus, in memory or
over NATS JetStream (-nats), shows live figures per topic, and checks at
the end that the events reached the subscribers (exit status 1 if not).
With -nats, -role splits the producers and the consumers into separate
processes:

  quantumtrader -nats nats://127.0.0.1:4222 -role consumers -duration 1m
  quantumtrader -nats nats://127.0.0.1:4222 -role producers -duration 10s

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
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var problem string
	switch {
	case fs.NArg() > 0:
		problem = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case cfg.duration <= 0:
		problem = fmt.Sprintf("-duration %v: must be positive", cfg.duration)
	case cfg.rate < 0:
		problem = fmt.Sprintf("-rate %d: must be 0 (as fast as possible) or positive", cfg.rate)
	case cfg.role != roleAll && cfg.role != roleProducers && cfg.role != roleConsumers:
		problem = fmt.Sprintf("-role %q: want all, producers or consumers", cfg.role)
	case cfg.natsURL == "" && cfg.role != roleAll:
		problem = fmt.Sprintf("-role %s needs -nats: in memory, producers and consumers share one process", cfg.role)
	case cfg.natsURL == "" && (set["stream"] || set["prefix"]):
		problem = "-stream and -prefix need -nats"
	case cfg.natsURL != "" && !validURL(cfg.natsURL):
		problem = fmt.Sprintf("-nats %q: want a URL such as nats://127.0.0.1:4222", cfg.natsURL)
	case !streamName.MatchString(cfg.stream):
		problem = fmt.Sprintf("-stream %q: want 1 to 255 letters, digits, '-' or '_'", cfg.stream)
	case len(cfg.prefix) > 128 || !subjectPrefix.MatchString(cfg.prefix):
		problem = fmt.Sprintf("-prefix %q: want dot-separated tokens of letters, digits, '-' or '_', at most 128 bytes", cfg.prefix)
	case cfg.metrics != "" && !validListenAddr(cfg.metrics):
		problem = fmt.Sprintf("-metrics %q: want host:port or :port, e.g. :9090", cfg.metrics)
	}
	if problem != "" {
		fmt.Fprintln(stderr, problem)
		fs.Usage()
		return cfg, fmt.Errorf("%w: %s", errUsage, problem)
	}
	return cfg, nil
}

// validURL reports whether s is a server URL nats.Connect takes: one or
// more, comma-separated, each with a scheme and a host.
func validURL(s string) bool {
	for u := range strings.SplitSeq(s, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host == "" {
			return false
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return false
		}
	}
	return true
}

// closeTimeout bounds the drain at the end of a run. The queues hold at
// most a few seconds of work, so a drain that takes longer is stuck, and
// the check then reports the undelivered events. Over NATS the backlog is
// on the broker, and a consumer that lags behind a producer in another
// process may have more of it.
const (
	closeTimeout     = 10 * time.Second
	closeTimeoutNATS = 30 * time.Second
)

// onSubscribed, if set, is called once run has made every subscription of
// its role: a test that starts the producers in another run waits for it,
// since the consumers' process makes more consumers than it can count.
var onSubscribed func()

// run is the whole program: it runs the part of the trading system its
// role says for cfg.duration or until ctx ends (Ctrl-C), shows the live
// view, drains the bus, prints the summary and returns errLoss if the
// delivery check failed. Every goroutine it starts has ended when it
// returns.
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
	metrics, err := listenMetrics(cfg.metrics, stderr)
	if err != nil {
		return err
	}
	defer metrics.close() // last: the final figures stay up until run returns
	bus, disconnect, err := newBus(cfg, view.logOutput(stderr))
	if err != nil {
		return err
	}
	defer disconnect()
	if err := metrics.serve(bus, view.logOutput(stderr)); err != nil {
		_ = bus.Close(ctx)
		return fmt.Errorf("serving metrics: %w", err)
	}
	sys := newSystem(bus, cfg)
	consumers, err := sys.startConsumers()
	if err != nil {
		_ = bus.Close(ctx)
		return fmt.Errorf("subscribing: %w", err)
	}
	if onSubscribed != nil {
		onSubscribed()
	}

	runCtx, stopRun := context.WithTimeout(ctx, cfg.duration)
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		view.run(runCtx, sys)
	}()
	perr := sys.runProducers(runCtx)
	if cfg.role == roleConsumers {
		<-runCtx.Done() // the MSC AI's review returns early if it fails
	}
	stopRun()
	<-viewDone
	elapsed := time.Since(sys.start)

	// Drain even when ctx was cancelled by Ctrl-C: the summary must count
	// every accepted event. If settling times out, Close still drains, and
	// what it refuses shows in the summary.
	timeout := closeTimeout
	if cfg.natsURL != "" {
		timeout = closeTimeoutNATS
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	settleCtx, cancelSettle := context.WithTimeout(closeCtx, timeout/2) // leave Close time to drain
	_ = sys.settle(settleCtx, consumers)
	cancelSettle()
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
