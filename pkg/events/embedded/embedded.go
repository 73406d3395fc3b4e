// Package embedded runs a NATS server with JetStream inside the current process.
//
// It exists for two callers that must not depend on an external NATS: the development
// launcher (`make run` with NATS_URL unset) and the test helper pkg/testkit/natstest. It lives
// apart from pkg/events so that service binaries, which only talk to NATS as clients, do not
// link the whole server.
package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config says where the embedded server listens and stores its streams.
type Config struct {
	// Host is the listen address; empty means 127.0.0.1 (never all interfaces by default).
	Host string
	// Port is the client port; -1 picks a free one (tests), 0 means the NATS default 4222.
	Port int
	// StoreDir holds the JetStream file store. A server restarted on the same directory
	// finds its streams, messages and durable consumers again.
	StoreDir string
	// SyncAlways makes JetStream fsync every write, as production runs
	// (`sync_interval: always`). Off by default: development and tests trade it for speed.
	SyncAlways bool
	// Logger receives the server's own log lines; nil keeps the server silent.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept connections; 0 means 10s.
	ReadyTimeout time.Duration
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// Start starts a JetStream-enabled server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded nats: StoreDir is required")
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	ready := cfg.ReadyTimeout
	if ready == 0 {
		ready = 10 * time.Second
	}
	opts := &server.Options{
		Host:       host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: cfg.SyncAlways,
		// The process owns signal handling (Ctrl-C in the launcher, the test binary).
		NoSigs: true,
		NoLog:  cfg.Logger == nil,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: new server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(slogAdapter{l: cfg.Logger}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(ready) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: not ready after %s", ready)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("embedded nats: JetStream did not start")
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Port is the client port the server actually listens on (useful after Port -1).
func (s *Server) Port() int {
	if a, ok := s.ns.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Shutdown stops the server and waits until it has released its port and store.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// slogAdapter forwards the server's printf-style log lines to slog. The server's own text
// is dynamic, so it goes into an attribute under a constant message.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) {
	a.l.Info("nats server", "line", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Warnf(format string, v ...any) {
	a.l.Warn("nats server", "line", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error("nats server fatal", "line", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Errorf(format string, v ...any) {
	a.l.Error("nats server", "line", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Debugf(format string, v ...any) {
	a.l.Debug("nats server", "line", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Tracef(format string, v ...any) {
	a.l.Debug("nats server trace", "line", fmt.Sprintf(format, v...))
}
