// Package natstest gives tests a real NATS JetStream server running in the test process.
//
// Tests of the event plumbing need the real thing (streams, durable consumers, deduplication,
// advisories), and they need to kill it and bring it back to prove that nothing is lost. Each
// test gets its own server on a free port with its store in the test's temporary directory;
// Restart brings it back on the same port and store, as a crashed production server would
// come back.
package natstest

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/forgeapps/backbone/pkg/events/embedded"
)

// Server is an in-process JetStream server owned by one test.
type Server struct {
	tb       testing.TB
	storeDir string
	port     int
	srv      *embedded.Server
}

// Start runs a fresh JetStream server for tb and shuts it down when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, storeDir: tb.TempDir(), port: -1}
	s.start()
	s.port = s.srv.Port()
	tb.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.tb.Helper()
	srv, err := embedded.Start(embedded.Config{Port: s.port, StoreDir: s.storeDir})
	if err != nil {
		s.tb.Fatalf("natstest: start: %v", err)
	}
	s.srv = srv
}

// URL is the nats:// URL of the server. It stays the same across Restart.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// StoreDir is the JetStream store directory, kept across Restart.
func (s *Server) StoreDir() string { return s.storeDir }

// Shutdown stops the server. Clients stay configured to reconnect, as they would to a
// crashed production server. Calling it twice is harmless.
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv = nil
	}
}

// Restart stops the server if it runs and starts it again on the same port and store
// directory: streams, stored messages and durable consumers survive.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Shutdown()
	s.start()
}

// Connect opens a client connection that reconnects forever (so a test can stop and restart
// the server under it) and closes it when the test ends.
func (s *Server) Connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	all := append([]nats.Option{
		nats.Name(tb.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20 * time.Millisecond), // tests wait for recovery: reconnect promptly
		nats.RetryOnFailedConnect(true),
	}, opts...)
	nc, err := nats.Connect(s.URL(), all...)
	if err != nil {
		tb.Fatalf("natstest: connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream opens a connection (see Connect) and returns its JetStream context.
func (s *Server) JetStream(tb testing.TB, opts ...nats.Option) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(s.Connect(tb, opts...))
	if err != nil {
		tb.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}
