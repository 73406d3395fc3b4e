// Package grpcserver builds the gRPC server every service runs, so that none of them can
// forget a piece: mTLS transport credentials, the interceptor chain in its fixed order, the
// workload table checked against every registered method, OpenTelemetry stats handlers, the
// standard health and reflection services, size limits, and a graceful stop that drains
// in-flight RPCs.
//
// Health is also served on a separate plaintext probe port that carries nothing but the health
// service: Kubernetes' native gRPC probes cannot present a client certificate.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/interceptors"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/telemetry"
)

// MaxMessageBytes bounds every request and response (app files and references are the
// largest; their own limits are lower and enforced by validation).
const MaxMessageBytes = 16 << 20

// Config describes one service's gRPC server.
type Config struct {
	// Name is the service name, for logs.
	Name string
	// Credentials are the mTLS server credentials (mtls.Source.ServerCredentials).
	Credentials credentials.TransportCredentials
	// Table is the service's workload table; health and reflection are added.
	Table authz.Table
	// Region is the region this instance serves.
	Region owner.Region
	Logger *slog.Logger
	// Telemetry supplies tracer and meter providers; nil uses no-op ones.
	Telemetry *telemetry.Providers
	// ShutdownGrace bounds how long Serve waits for in-flight RPCs when ctx ends.
	ShutdownGrace time.Duration
}

// Server is a service's gRPC server plus its probe server.
type Server struct {
	cfg    Config
	grpc   *grpc.Server
	probe  *grpc.Server
	health *health.Server
}

// New builds the server and lets register add the service's APIs. It fails when a
// registered method is missing from the workload table.
func New(cfg Config, register func(grpc.ServiceRegistrar)) (*Server, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("grpcserver: transport credentials are required (every hop is mTLS)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 20 * time.Second
	}
	table := cfg.Table.WithStandardServices()
	if err := table.Validate(); err != nil {
		return nil, err
	}
	chain, err := interceptors.ServerChain(interceptors.Config{Logger: cfg.Logger, Table: table, Region: cfg.Region})
	if err != nil {
		return nil, fmt.Errorf("grpcserver: interceptors: %w", err)
	}
	opts := []grpc.ServerOption{
		grpc.Creds(cfg.Credentials),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
		grpc.ConnectionTimeout(10 * time.Second),
	}
	if cfg.Telemetry != nil {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(cfg.Telemetry.Tracer),
			otelgrpc.WithMeterProvider(cfg.Telemetry.Meter),
			otelgrpc.WithPropagators(cfg.Telemetry.Propagator),
		)))
	}
	opts = append(opts, interceptors.ServerOptions(chain)...)

	s := &Server{cfg: cfg, grpc: grpc.NewServer(opts...), probe: grpc.NewServer(), health: health.NewServer()}
	register(s.grpc)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	healthpb.RegisterHealthServer(s.probe, s.health)
	if err := table.Covers(s.grpc); err != nil {
		return nil, err
	}
	// Until Serve runs, probes answer NOT_SERVING.
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// GRPC returns the underlying server (for tests that need its service info).
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// SetServing flips the overall health status (for example when a dependency is lost).
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
}

// Serve serves the API on lis and health on probe (which may be nil) until ctx ends, then
// reports NOT_SERVING, drains in-flight RPCs for up to ShutdownGrace and stops.
func (s *Server) Serve(ctx context.Context, lis, probe net.Listener) error {
	errs := make(chan error, 2)
	go func() { errs <- s.grpc.Serve(lis) }()
	if probe != nil {
		go func() { errs <- s.probe.Serve(probe) }()
	}
	s.SetServing(true)
	s.cfg.Logger.InfoContext(ctx, "grpc server started", slog.String("addr", lis.Addr().String()))

	select {
	case err := <-errs:
		s.grpc.Stop()
		s.probe.Stop()
		return fmt.Errorf("grpcserver: serve: %w", err)
	case <-ctx.Done():
	}
	s.SetServing(false)
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(s.cfg.ShutdownGrace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.cfg.Logger.Warn("grpc drain timed out; stopping")
		s.grpc.Stop()
	}
	s.probe.Stop()
	return nil
}

// ListenAndServe listens on addr (API) and probeAddr (health only; empty to skip) and serves.
func (s *Server) ListenAndServe(ctx context.Context, addr, probeAddr string) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("grpcserver: listen %s: %w", addr, err)
	}
	var probe net.Listener
	if probeAddr != "" {
		if probe, err = lc.Listen(ctx, "tcp", probeAddr); err != nil {
			_ = lis.Close()
			return fmt.Errorf("grpcserver: listen %s: %w", probeAddr, err)
		}
	}
	return s.Serve(ctx, lis, probe)
}
