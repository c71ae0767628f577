// Package natstest gives tests a NATS server with JetStream to run natsbus
// against: by default an embedded server per test, with its store in the
// test's temporary directory; when the environment variable
// EVENTBUS_NATS_URL is set, the server at that URL instead, shared with
// whatever else uses it, so every test gets a stream and subject prefix of
// its own, deleted when the test ends.
//
// The usual start of a test:
//
//	nc, names := natstest.Connect(t)
//	tr, err := natsbus.New(nc, names.Options()...)
//
// Tests that stop and restart the broker call StartEmbedded, which always
// embeds one.
package natstest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/quantumtrader/eventbus/natsbus"
)

// EnvURL names the environment variable that points the tests at a running
// server, e.g. EVENTBUS_NATS_URL=nats://127.0.0.1:4222.
const EnvURL = "EVENTBUS_NATS_URL"

// Server is a NATS server with JetStream serving one test. Its methods
// must be called from the test's goroutine.
type Server struct {
	url      string
	storeDir string         // "" for an external server
	port     int            // the embedded server's port, kept across restarts
	srv      *server.Server // nil for an external server, or while shut down
}

// Connect starts a server for t (see Start), connects to it (see
// Server.Connect) and returns the connection with the test's own stream
// and subject prefix (see Server.Names).
func Connect(t testing.TB) (*nats.Conn, Names) {
	t.Helper()
	s := Start(t)
	return s.Connect(t), s.Names(t)
}

// Start returns the server at $EVENTBUS_NATS_URL if it is set, and
// otherwise starts an embedded one, as StartEmbedded does.
func Start(t testing.TB) *Server {
	t.Helper()
	if url := os.Getenv(EnvURL); url != "" {
		s := &Server{url: url}
		s.ensureAnchor(t)
		return s
	}
	return StartEmbedded(t)
}

// AnchorStream is the one stream the tests leave on a server at
// $EVENTBUS_NATS_URL: empty, on the subject "natstest.anchor", and there
// only so that the server's account always holds a stream.
//
// NATS servers before 2.10 (Debian's 2.9 among them) remove an account's
// store directory when its last file stream is deleted, and a stream
// created on another connection at that moment fails with "error
// creating store for stream" (the server logs "could not create storage
// directory ... no such file or directory"). Tests that run in parallel,
// each with a stream of its own, hit exactly that window; with the anchor
// in place the directory is never empty and the window never opens.
const AnchorStream = "NATSTEST_ANCHOR"

// anchored is the URL whose anchor this process has already made sure of.
var anchored struct {
	sync.Mutex
	url string
}

// ensureAnchor makes sure AnchorStream exists on the server, once per
// process and URL. Creating the anchor can itself meet the window above
// (another process deleting the account's last stream), so it tries a few
// times.
func (s *Server) ensureAnchor(t testing.TB) {
	t.Helper()
	anchored.Lock()
	defer anchored.Unlock()
	if anchored.url == s.url {
		return
	}
	js, closeJS, err := s.jetStream()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer closeJS()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := jetstream.StreamConfig{
		Name:     AnchorStream,
		Subjects: []string{"natstest.anchor"},
		Storage:  jetstream.FileStorage,
		MaxMsgs:  1,
	}
	for attempt := 1; ; attempt++ {
		// A create with the same config succeeds on an existing stream.
		_, err = js.CreateStream(ctx, cfg)
		if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			anchored.url = s.url
			return
		}
		if attempt == 5 {
			t.Fatalf("natstest: anchor stream %s on %s: %v", AnchorStream, s.url, err)
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
}

// StartEmbedded starts a server in this process on a free port of
// 127.0.0.1, with JetStream storing in a directory of t.TempDir(), and
// shuts it down when the test ends.
func StartEmbedded(t testing.TB) *Server {
	t.Helper()
	s := &Server{storeDir: t.TempDir()}
	s.start(t)
	t.Cleanup(s.shutdown)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	srv, err := runServer(s.port, s.storeDir)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	s.srv = srv
	s.port = srv.Addr().(*net.TCPAddr).Port
	s.url = srv.ClientURL()
}

// Embedded starts a NATS server with JetStream in this process, on a free
// port of 127.0.0.1 and storing in a new temporary directory, for code
// that has no testing.TB, such as examples. stop shuts it down and removes
// the directory.
func Embedded() (url string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "natstest")
	if err != nil {
		return "", nil, err
	}
	srv, err := runServer(0, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	return srv.ClientURL(), func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}, nil
}

// runServer starts a server in this process on port (0: a free one) of
// 127.0.0.1, with JetStream storing in storeDir, and waits until it
// accepts connections.
func runServer(port int, storeDir string) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      cmp.Or(port, server.RANDOM_PORT),
		JetStream: true,
		StoreDir:  storeDir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		return nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded server not ready after 10s")
	}
	return srv, nil
}

func (s *Server) shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// URL is the server's client URL.
func (s *Server) URL() string { return s.url }

// Embedded reports whether the server runs in this process, and so can be
// shut down and restarted.
func (s *Server) Embedded() bool { return s.storeDir != "" }

// Shutdown stops the embedded server and waits until it has stopped;
// clients see the connection drop and start reconnecting. It fails the
// test for an external server.
func (s *Server) Shutdown(t testing.TB) {
	t.Helper()
	if !s.Embedded() {
		t.Fatalf("natstest: cannot shut down the server at $%s", EnvURL)
	}
	s.shutdown()
}

// Restart starts the embedded server again after Shutdown, on the same
// port and store, so clients reconnect and find their streams and
// consumers as they were. It fails the test for an external server.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if !s.Embedded() {
		t.Fatalf("natstest: cannot restart the server at $%s", EnvURL)
	}
	s.shutdown()
	s.start(t)
}

// Connect connects to the server and closes the connection when the test
// ends. The connection reconnects without limit, 50ms apart, so that a test
// that restarts the server does not wait long; opts are applied after
// these defaults.
func (s *Server) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{
		nats.Name(t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := nats.Connect(s.url, all...)
	if err != nil {
		t.Fatalf("natstest: connect to %s: %v", s.url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Names are the stream and subject prefix reserved for one test.
type Names struct {
	Stream        string // for natsbus.WithStream
	SubjectPrefix string // for natsbus.WithSubjectPrefix
}

// Options returns the natsbus options that select n.
func (n Names) Options() []natsbus.Option {
	return []natsbus.Option{natsbus.WithStream(n.Stream), natsbus.WithSubjectPrefix(n.SubjectPrefix)}
}

// Names reserves a stream name and subject prefix for the test, with a
// random suffix, and deletes that stream when the test ends (if it exists
// by then). On an embedded server, which the test has to itself, the
// stream goes with the server.
func (s *Server) Names(t testing.TB) Names {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	n := Names{Stream: "TEST_" + id, SubjectPrefix: "test_" + id}
	if !s.Embedded() {
		t.Cleanup(func() { s.deleteStream(t, n.Stream) })
	}
	return n
}

func (s *Server) deleteStream(t testing.TB, stream string) {
	js, closeJS, err := s.jetStream()
	if err != nil {
		t.Errorf("natstest: delete stream %s: %v", stream, err)
		return
	}
	defer closeJS()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("natstest: delete stream %s: %v", stream, err)
	}
}

// jetStream connects to the server for one piece of housekeeping; the
// caller calls closeJS when done.
func (s *Server) jetStream() (js jetstream.JetStream, closeJS func(), err error) {
	nc, err := nats.Connect(s.url)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", s.url, err)
	}
	if js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}
