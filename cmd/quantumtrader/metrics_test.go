package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
)

// announcedURL is the line listenMetrics prints.
var announcedURL = regexp.MustCompile(`serving metrics at (http://\S+/metrics)\n`)

// stderrWatch is run's stderr in a test: safe for the concurrent writes of
// the bus's logger and the metrics server, it passes on the metrics URL
// once it has been printed.
type stderrWatch struct {
	mu  sync.Mutex
	buf bytes.Buffer
	url chan string
}

func newStderrWatch() *stderrWatch { return &stderrWatch{url: make(chan string, 1)} }

func (w *stderrWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := announcedURL.Match(w.buf.Bytes())
	w.buf.Write(p)
	if m := announcedURL.FindSubmatch(w.buf.Bytes()); !had && m != nil {
		w.url <- string(m[1])
	}
	return len(p), nil
}

func (w *stderrWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// noKeepAlive leaves no idle connection behind for goleak to find.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// scrapePublished returns eventbus_events_published_total by topic.
func scrapePublished(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := noKeepAlive.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	require.Contains(t, families, "eventbus_bus_subscriptions", "the bus's collector is served")
	published := map[string]float64{} // the family is absent until a topic exists
	for _, m := range families["eventbus_events_published_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "topic" {
				published[l.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return published
}

func TestRunServesMetrics(t *testing.T) {
	interrupt, stop := context.WithCancel(t.Context())
	defer stop()
	stderr := newStderrWatch()
	done := make(chan error, 1)
	go func() {
		done <- run(interrupt, []string{"-duration", "1m", "-quiet", "-metrics", "127.0.0.1:0"}, io.Discard, stderr)
	}()
	var url string
	select {
	case url = <-stderr.url:
	case err := <-done:
		t.Fatalf("run returned %v before serving metrics; stderr:\n%s", err, stderr)
	}

	first := scrapePublished(t, url)
	// The market publishes thousands of ticks a second: the second scrape
	// sees more at once, unless this machine is very busy.
	var second map[string]float64
	require.Eventually(t, func() bool {
		second = scrapePublished(t, url)
		return second[TickTopic] > first[TickTopic]
	}, 10*time.Second, 10*time.Millisecond, "market.tick published moved past %v", first[TickTopic])
	for topic, n := range first {
		assert.GreaterOrEqual(t, second[topic], n, "%s: a counter never goes down", topic)
	}
	assert.Contains(t, second, eventbus.OpportunitiesUpdatedType, "the Opportunity Ranker's topic is exported too")

	stop() // Ctrl-C: the run drains, reports and shuts the server down
	require.NoError(t, <-done, "stderr:\n%s", stderr)
	_, err := noKeepAlive.Get(url)
	assert.Error(t, err, "the server is gone once run returns")
}

func TestMetricsFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	for _, tc := range []struct {
		name      string
		addr      string
		want      string
		withUsage bool
	}{
		{"an address without a port is refused", "localhost", `-metrics "localhost": want host:port or :port`, true},
		{"a port out of range is refused", ":65536", `-metrics ":65536": want host:port or :port`, true},
		{"a named port is refused", ":http", `-metrics ":http": want host:port or :port`, true},
		{"an address in use is refused at startup", taken.Addr().String(), "-metrics " + taken.Addr().String() + ": listen tcp", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{"-metrics", tc.addr, "-duration", "1s", "-quiet"}, &stdout, &stderr)
			require.ErrorIs(t, err, errUsage)
			assert.Equal(t, 2, exitCode(err, io.Discard), "a bad flag's status")
			assert.Contains(t, stderr.String(), tc.want)
			if tc.withUsage {
				assert.Contains(t, stderr.String(), "Usage: quantumtrader [flags]")
			}
			assert.Empty(t, stdout.String(), "nothing ran")
		})
	}
	t.Run("the flag is in the usage", func(t *testing.T) {
		var stderr bytes.Buffer
		_ = run(t.Context(), []string{"-h"}, io.Discard, &stderr)
		assert.Contains(t, stderr.String(), "-metrics addr")
	})
}
