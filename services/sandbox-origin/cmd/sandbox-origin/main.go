// Command sandbox-origin serves every generated app at its own origin on the sandbox domain,
// issues the view tickets that open private apps there, and runs the request-time secret
// proxy. main only wires; the pieces live in internal/.
package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
	"github.com/forgeapps/backbone/pkg/service"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/appcache"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/config"
	sandboxevents "github.com/forgeapps/backbone/services/sandbox-origin/internal/events"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/grpcapi"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/httpapi"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/postgres"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/remote"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-origin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		// The migration Job has the database settings only: it needs none of serve's (HTTP
		// address, domain, console origin, edge certificate, dependency addresses).
		base, err := service.LoadBase(workload.SandboxOrigin, getenv)
		if err != nil {
			return err
		}
		return service.Main(ctx, args, stdout, spec(base), nil)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	return service.Main(ctx, args, stdout, spec(cfg.Base), func(ctx context.Context, rt *service.Runtime) (func(grpc.ServiceRegistrar), error) {
		return setup(ctx, rt, cfg)
	})
}

// spec is the service as pkg/service runs it, for both commands.
func spec(base service.Base) service.Spec {
	return service.Spec{
		Base:  base,
		Table: grpcapi.Table(),
		Database: &service.Database{
			Schema: postgres.Schema,
			Sources: []database.Source{
				{Name: events.MigrationSourceName, FS: events.Migrations()},
				{Name: postgres.SourceName, FS: postgres.Migrations()},
			},
			Posture: database.Posture{DefinerFunctions: events.SecurityDefinerFunctions()},
		},
		Events: true,
	}
}

func setup(ctx context.Context, rt *service.Runtime, cfg config.Config) (func(grpc.ServiceRegistrar), error) {
	domain, err := origin.ParseDomain(cfg.SandboxDomain)
	if err != nil {
		return nil, err
	}
	key := cfg.GrantKey
	if key.IsZero() {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		key = secret.New(string(b))
		rt.Logger.WarnContext(ctx, "FORGE_SANDBOX_GRANT_KEY_FILE is not set: origin cookies are sealed with a key made at start, "+
			"so they do not survive a restart and do not work across replicas")
	}
	sealer, err := origin.NewSealer(key, nil)
	if err != nil {
		return nil, err
	}
	edge, err := mtls.NewServingSource(cfg.EdgeCert, cfg.EdgeKey, rt.Logger)
	if err != nil {
		return nil, fmt.Errorf("edge certificate: %w", err)
	}
	appsConn, err := rt.Dial(cfg.AppsAddr, workload.Apps)
	if err != nil {
		return nil, err
	}
	vaultConn, err := rt.Dial(cfg.VaultAddr, workload.SecretsVault)
	if err != nil {
		return nil, err
	}
	rc := &remote.Client{
		Apps:   appsv1.NewAppsInternalServiceClient(appsConn),
		Vault:  vaultv1.NewSecretResolverServiceClient(vaultConn),
		Region: rt.Base.Region,
	}
	store := &postgres.Store{DB: rt.DB}
	cache, err := appcache.New(appcache.Config{
		Source: appcache.Source{
			Fetch: func(ctx context.Context, id uuid.UUID) (*appcache.App, error) {
				a, err := rc.Fetch(ctx, id)
				if err != nil {
					return nil, err
				}
				served, err := store.Served(ctx, a.Owner)
				if err != nil {
					return nil, err
				}
				if !served {
					return nil, appcache.ErrNotFound
				}
				return a, nil
			},
			CheckViewer:     rc.CheckViewer,
			CheckShareToken: rc.CheckShareToken,
		},
		TTL:      cfg.CacheTTL,
		MaxBytes: cfg.CacheMaxBytes,
		MaxApps:  cfg.CacheMaxApps,
	})
	if err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if cfg.Proxy.RootCAsFile != "" {
		pem, err := os.ReadFile(cfg.Proxy.RootCAsFile)
		if err != nil {
			return nil, fmt.Errorf("FORGE_PROXY_ROOT_CAS: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, errors.New("FORGE_PROXY_ROOT_CAS: no certificate in the file")
		}
	}
	logger := rt.Logger
	audit := postgres.NewAuditLog(store, 4096, logger)
	rt.Go("proxy audit", audit.Run)
	px, err := proxy.New(proxy.Config{
		Resolve: rc.ResolveSecret,
		Audit: func(ctx context.Context, r proxy.Record) {
			logger.InfoContext(ctx, "proxy call", "app_id", r.App, "owner_id", r.Owner, "caller", r.Caller,
				"secret_name", r.SecretName, "upstream", r.UpstreamHost, "method", r.Method, "status", r.Status,
				"outcome", r.Outcome, "request_bytes", r.RequestBytes, "response_bytes", r.ResponseBytes,
				"duration_ms", r.Duration.Milliseconds())
			audit.Record(ctx, r)
		},
		AllowHosts:       cfg.Proxy.AllowHosts,
		RootCAs:          roots,
		MaxRequestBytes:  cfg.Proxy.MaxRequestBytes,
		MaxResponseBytes: cfg.Proxy.MaxResponseBytes,
		Timeout:          cfg.Proxy.Timeout,
		HeaderTimeout:    cfg.Proxy.HeaderTimeout,
		RatePerSecond:    cfg.Proxy.RatePerSecond,
		Burst:            cfg.Proxy.Burst,
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}
	web, err := httpapi.New(httpapi.Config{
		Domain: domain, ConsoleOrigin: cfg.ConsoleOrigin, Cache: cache, Sealer: sealer,
		Tickets: store, Proxy: px, GrantTTL: cfg.GrantTTL, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	recordStatus := func(ctx context.Context, o owner.ID, status string, at time.Time) error {
		return rt.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
			return store.RecordStatus(ctx, tx, o, status, at)
		})
	}
	inv := &sandboxevents.Invalidator{JS: rt.JetStream, NATS: rt.NATS, Cache: cache, RecordStatus: recordStatus, Logger: logger}
	durable := &sandboxevents.Durable{JS: rt.JetStream, DB: rt.DB, Store: store, Outbox: rt.Outbox, Cache: cache, Logger: logger}
	rt.Go("invalidation consumer", inv.Run)
	rt.Go("durable consumers", durable.Run)
	rt.Go("https server", func(ctx context.Context) error {
		// Serve only once invalidations are flowing: an app revoked before then would otherwise
		// stay served from this replica's cache until its TTL.
		select {
		case <-inv.Ready():
		case <-ctx.Done():
			return nil
		}
		defer px.Close()
		return web.Run(ctx, cfg.HTTPAddr, edge, rt.Base.ShutdownGrace)
	})

	tickets := &grpcapi.Tickets{
		Apps: cache, CheckViewer: rc.CheckViewer, Store: store,
		IsTooMany: func(err error) bool { return errors.Is(err, postgres.ErrTooManyTickets) },
		Domain:    domain, TTL: cfg.TicketTTL, Now: time.Now,
	}
	return tickets.Register, nil
}
