package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/grpcserver"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/telemetry"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Database describes a service's schema.
type Database struct {
	// Schema is the service schema (tables are unqualified in SQL; search_path points here).
	Schema string
	// Sources are the service's migration sources, applied after the platform source. Services
	// that emit or consume events put events.Migrations first.
	Sources []database.Source
	// Posture lists the reviewed exceptions the start-up posture check allows.
	Posture database.Posture
	Options database.Options
}

// Spec is what a service declares about itself.
type Spec struct {
	Base  Base
	Table authz.Table
	// Database is nil for services without one (the gateway).
	Database *Database
	// Events connects to NATS, ensures the streams and runs the outbox relay.
	Events bool
	// Streams tunes the streams (replicas 3 in production).
	Streams events.StreamsConfig
}

// Runtime is what a service's setup function receives: everything already connected.
type Runtime struct {
	Base      Base
	Logger    *slog.Logger
	Telemetry *telemetry.Providers
	TLS       *mtls.Source
	DB        *database.DB
	NATS      *nats.Conn
	JetStream jetstream.JetStream
	Outbox    *events.Outbox

	mu      sync.Mutex
	workers []worker
	closers []func()
}

type worker struct {
	name string
	run  func(ctx context.Context) error
}

// Go registers a background worker (an HTTP server, an event consumer, a scheduler). It runs
// until the service stops; if it returns an error before that, the service stops with it.
func (r *Runtime) Go(name string, run func(ctx context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workers = append(r.workers, worker{name: name, run: run})
}

// Dial connects to another service over mTLS, checking it presents the certificate of
// workload server. The connection is closed when the service stops.
func (r *Runtime) Dial(target, server string) (*grpc.ClientConn, error) {
	id, err := workload.New(r.Base.TrustDomain, server)
	if err != nil {
		return nil, err
	}
	cc, err := grpcclient.Dial(target, r.TLS.ClientCredentials(id), r.Telemetry)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.closers = append(r.closers, func() { _ = cc.Close() })
	r.mu.Unlock()
	return cc, nil
}

// Setup builds a service's handlers and workers from a connected Runtime and returns the
// function registering its gRPC services.
type Setup func(ctx context.Context, rt *Runtime) (register func(grpc.ServiceRegistrar), err error)

// Main runs the command in args ("serve", the default, or "migrate").
func Main(ctx context.Context, args []string, stdout io.Writer, spec Spec, setup Setup) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	logger := telemetry.NewLogger(stdout, spec.Base.Name, spec.Base.LogLevel)
	switch cmd {
	case "serve":
		return serve(ctx, logger, spec, setup)
	case "migrate":
		return migrate(ctx, logger, spec)
	}
	return errUsage
}

func migrate(ctx context.Context, logger *slog.Logger, spec Spec) error {
	if spec.Database == nil {
		logger.InfoContext(ctx, "no database to migrate")
		return nil
	}
	if spec.Base.MigrationDatabaseURL.IsZero() || spec.Base.RuntimeRole == "" {
		return errors.New("migrate: MIGRATION_DATABASE_URL and FORGE_DB_RUNTIME_ROLE are required")
	}
	err := database.Migrate(ctx, spec.Base.MigrationDatabaseURL.Reveal(), database.Migrations{
		Schema:      spec.Database.Schema,
		RuntimeRole: spec.Base.RuntimeRole,
		Sources:     spec.Database.Sources,
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	logger.InfoContext(ctx, "migrations applied", slog.String("schema", spec.Database.Schema))
	return nil
}

func serve(ctx context.Context, logger *slog.Logger, spec Spec, setup Setup) (err error) {
	b := spec.Base
	if err := b.CheckServe(); err != nil {
		return err
	}
	logger.InfoContext(ctx, "starting", slog.Any("config", b))
	tel, err := telemetry.Setup(ctx, telemetry.Config{Service: b.Name, Region: b.Region.String(), OTLPEndpoint: b.OTLPEndpoint})
	if err != nil {
		return err
	}
	rt := &Runtime{Base: b, Logger: logger, Telemetry: tel}
	defer func() {
		rt.mu.Lock()
		closers := rt.closers
		rt.mu.Unlock()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		_ = tel.Shutdown(context.Background())
	}()
	if rt.TLS, err = mtls.NewSource(b.TLS, b.TrustDomain, logger); err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	if rt.TLS.Identity().Name() != b.Name {
		return fmt.Errorf("mtls: the certificate is for %s, not %s", rt.TLS.Identity(), b.Name)
	}
	if spec.Database != nil {
		if err := openDatabase(ctx, rt, spec.Database); err != nil {
			return err
		}
	}
	if spec.Events {
		if err := connectEvents(ctx, rt, spec); err != nil {
			return err
		}
	}
	register, err := setup(ctx, rt)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	srv, err := grpcserver.New(grpcserver.Config{
		Name:          b.Name,
		Credentials:   rt.TLS.ServerCredentials(),
		Table:         spec.Table,
		Region:        b.Region,
		Logger:        logger,
		Telemetry:     tel,
		ShutdownGrace: b.ShutdownGrace,
	}, func(r grpc.ServiceRegistrar) {
		if register != nil {
			register(r)
		}
	})
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.ListenAndServe(gctx, b.GRPCAddr, b.HealthAddr) })
	rt.mu.Lock()
	workers := rt.workers
	rt.mu.Unlock()
	for _, w := range workers {
		g.Go(func() error {
			if err := w.run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", w.name, err)
			}
			return nil
		})
	}
	err = g.Wait()
	if err != nil {
		logger.ErrorContext(ctx, "stopped with an error", slog.Any("error", err))
		return err
	}
	logger.InfoContext(ctx, "stopped")
	return nil
}

func openDatabase(ctx context.Context, rt *Runtime, d *Database) error {
	if rt.Base.DatabaseURL.IsZero() {
		return errors.New("DATABASE_URL is required")
	}
	opts := d.Options
	opts.Schema = d.Schema
	db, err := database.Open(ctx, rt.Base.DatabaseURL.Reveal(), opts)
	if err != nil {
		return err
	}
	rt.DB = db
	rt.closers = append(rt.closers, db.Close)
	posture := d.Posture
	posture.Schema = d.Schema
	if err := database.CheckPosture(ctx, db, posture); err != nil {
		// Refuse to serve: a schema without forced RLS, or a runtime role that can bypass it,
		// breaks the isolation promise for every tenant.
		return fmt.Errorf("database posture: %w", err)
	}
	return nil
}

// natsOptions are the client options every service uses. A tls:// URL (production) is
// verified against the workload trust bundle and answered with the workload certificate, the
// same material as every gRPC hop, re-read on rotation.
func natsOptions(rt *Runtime) []nats.Option {
	opts := []nats.Option{
		nats.Name(rt.Base.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
	}
	if strings.HasPrefix(rt.Base.NATSURL, "tls://") {
		opts = append(opts, nats.Secure(rt.TLS.ServiceTLSConfig()))
	}
	return opts
}

func connectEvents(ctx context.Context, rt *Runtime, spec Spec) error {
	if rt.Base.NATSURL == "" {
		return errors.New("NATS_URL is required")
	}
	nc, err := nats.Connect(rt.Base.NATSURL, natsOptions(rt)...)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	rt.NATS = nc
	rt.closers = append(rt.closers, func() { _ = nc.Drain() })
	if rt.JetStream, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := events.EnsureStreams(ctx, rt.JetStream, spec.Streams); err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	if rt.Outbox, err = events.NewOutbox(events.OutboxConfig{Region: rt.Base.Region, Propagator: rt.Telemetry.Propagator}); err != nil {
		return err
	}
	if rt.DB != nil {
		relay, err := events.NewRelay(events.RelayConfig{
			DB: rt.DB,
			// The relay LISTENs for new outbox rows on a dedicated connection of the same role.
			ListenURL: rt.Base.DatabaseURL.Reveal(),
			JS:        rt.JetStream,
			Logger:    rt.Logger,
			Meter:     rt.Telemetry.Meter,
		})
		if err != nil {
			return err
		}
		rt.Go("outbox relay", relay.Run)
	}
	return nil
}
