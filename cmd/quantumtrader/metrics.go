package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbusprom"
)

// validListenAddr reports whether s is an address -metrics can listen on:
// host:port or :port, with a numeric port (0 for any free one).
func validListenAddr(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	_, err = strconv.ParseUint(port, 10, 16)
	return err == nil
}

// metricsServer serves the bus's statistics in Prometheus's format at
// /metrics while the run goes on (-metrics). A nil *metricsServer is
// metrics off, and its methods do nothing.
type metricsServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve has returned; nil until serve
}

// metricsShutdownTimeout bounds how long close waits for a scrape under
// way; a scrape takes milliseconds.
const metricsShutdownTimeout = 5 * time.Second

// listenMetrics listens on addr, before anything else starts, so that an
// address that cannot be had is a usage error at once (exit status 2),
// and prints the URL to scrape on stderr: with port 0 it is the only way
// to learn the port. It returns nil for an empty addr.
func listenMetrics(addr string, stderr io.Writer) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		problem := fmt.Sprintf("-metrics %s: %v", addr, err)
		fmt.Fprintln(stderr, "quantumtrader:", problem)
		return nil, fmt.Errorf("%w: %s", errUsage, problem)
	}
	a := ln.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "localhost" // listening on every interface: this one a browser can reach
	}
	fmt.Fprintf(stderr, "quantumtrader: serving metrics at http://%s/metrics\n", net.JoinHostPort(host, strconv.Itoa(a.Port)))
	return &metricsServer{ln: ln}, nil
}

// serve starts serving the collector of bus, with the Go runtime's and the
// process's metrics beside it, until close. Server errors go to logOutput.
func (m *metricsServer) serve(bus *eventbus.Bus, logOutput io.Writer) error {
	if m == nil {
		return nil
	}
	c, err := eventbusprom.New(bus)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	if err := errors.Join(reg.Register(c), reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))); err != nil {
		return err
	}
	errorLog := log.New(logOutput, "quantumtrader: metrics: ", 0)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errorLog}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(m.ln); !errors.Is(err, http.ErrServerClosed) {
			errorLog.Print(err)
		}
	}()
	return nil
}

// close stops the server: it stops accepting, lets a scrape under way
// finish (for metricsShutdownTimeout at most) and returns once the serving
// goroutine has ended. Without serve, it closes the listener.
func (m *metricsServer) close() {
	if m == nil {
		return
	}
	if m.done == nil {
		_ = m.ln.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		_ = m.srv.Close() // the scrape that overran
	}
	<-m.done
}
