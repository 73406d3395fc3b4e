// Command gateway is the edge of the suite: it authenticates people and serves every
// service's JSON API over HTTPS, calling the services over mTLS gRPC.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/apidocs"
	"github.com/forgeapps/backbone/pkg/authz"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/service"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
	"github.com/forgeapps/backbone/services/gateway/internal/config"
	"github.com/forgeapps/backbone/services/gateway/internal/devidp"
	"github.com/forgeapps/backbone/services/gateway/internal/edge"
	"github.com/forgeapps/backbone/services/gateway/internal/revocation"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		// The gateway owns no database: migrate has nothing to do and needs none of serve's
		// settings.
		base, err := service.LoadBase(config.Name, getenv)
		if err != nil {
			return err
		}
		return service.Main(ctx, args, stdout, service.Spec{Base: base, Table: authz.Table{}}, nil)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	spec := service.Spec{
		Base: cfg.Base,
		// The gateway serves no gRPC API of its own: health and reflection only.
		Table:  authz.Table{},
		Events: cfg.Base.NATSURL != "",
	}
	return service.Main(ctx, args, stdout, spec, setup(cfg))
}

func setup(cfg config.Config) service.Setup {
	return func(ctx context.Context, rt *service.Runtime) (func(grpc.ServiceRegistrar), error) {
		log := rt.Logger
		log.InfoContext(ctx, "edge configuration", slog.Any("edge", cfg))
		serving, err := mtls.NewServingSource(cfg.EdgeCert, cfg.EdgeKey, log)
		if err != nil {
			return nil, fmt.Errorf("edge certificate: %w", err)
		}
		lis, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
		}

		issuer := cfg.OIDCIssuer
		var idp *devidp.Provider
		if cfg.DevIdP {
			port := lis.Addr().(*net.TCPAddr).Port
			issuer = "https://localhost:" + strconv.Itoa(port) + devidp.PathPrefix
			if idp, err = devidp.New(issuer, cfg.OIDCAudience, nil); err != nil {
				_ = lis.Close()
				return nil, err
			}
			log.WarnContext(ctx, "development identity provider on: it signs an ID token for any email", slog.String("issuer", issuer))
		}
		roots, err := auth.RootsWithFile(cfg.OIDCCAFile)
		if err != nil {
			_ = lis.Close()
			return nil, err
		}
		verifier, err := auth.NewVerifier(auth.VerifierConfig{Issuer: issuer, Audience: cfg.OIDCAudience, Client: auth.HTTPClient(roots)})
		if err != nil {
			_ = lis.Close()
			return nil, err
		}

		var feed auth.Feed
		var revocations *revocation.Feed
		if rt.JetStream != nil {
			revocations = revocation.New(rt.NATS, rt.JetStream, log)
			feed = revocations
		}
		cache := auth.NewCache(auth.CacheConfig{TTL: cfg.AuthCacheTTL, MaxSize: cfg.AuthCacheSize, Feed: feed})
		if revocations != nil {
			rt.Go("revocation feed", func(ctx context.Context) error { return revocations.Run(ctx, cache) })
		}

		backends := map[string]grpc.ClientConnInterface{}
		for _, b := range cfg.Backends() {
			if b.Addr == "" {
				continue
			}
			cc, err := rt.Dial(b.Addr, b.Workload)
			if err != nil {
				_ = lis.Close()
				return nil, fmt.Errorf("dial %s: %w", b.Workload, err)
			}
			backends[b.Workload] = edge.WatchRevocations(cc, cache)
		}
		sessions := tenantv1.NewSessionServiceClient(backends[cfg.Tenant.Workload])
		deps := edge.Deps{
			Auth:     auth.NewAuthenticator(sessions, verifier, cache, log),
			Sessions: sessions,
			Backends: backends,
			Docs:     apidocs.FS(),
		}
		if idp != nil {
			deps.DevIdP = idp.Handler()
		}
		e, err := edge.New(ctx, edge.Config{
			ConsoleOrigin:  cfg.ConsoleOrigin,
			IPRate:         cfg.IPLimit.Rate,
			IPBurst:        cfg.IPLimit.Burst,
			TenantRate:     cfg.TenantLimit.Rate,
			TenantBurst:    cfg.TenantLimit.Burst,
			MaxBodyBytes:   cfg.MaxBodyBytes,
			MaxUploadBytes: cfg.MaxUploadBytes,
			Logger:         log,
		}, deps)
		if err != nil {
			_ = lis.Close()
			return nil, err
		}

		srv := &http.Server{
			Handler:           e,
			TLSConfig:         serving.TLSConfig(),
			ReadHeaderTimeout: 10 * time.Second,
			// Uploads of up to 16 MiB on slow links; downloads stream without a write timeout.
			ReadTimeout:    2 * time.Minute,
			IdleTimeout:    2 * time.Minute,
			MaxHeaderBytes: 64 << 10,
			ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
		rt.Go("edge https", func(ctx context.Context) error {
			errs := make(chan error, 1)
			go func() { errs <- srv.ServeTLS(lis, "", "") }()
			log.InfoContext(ctx, "edge listening", slog.String("addr", lis.Addr().String()), slog.String("oidc_issuer", issuer))
			select {
			case err := <-errs:
				return fmt.Errorf("edge https: %w", err)
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Base.ShutdownGrace)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		// Discovery once the edge listens, so a wrong issuer shows in the log at start; it is
		// retried on the first requests anyway.
		rt.Go("oidc discovery", func(ctx context.Context) error {
			for delay := 200 * time.Millisecond; ; delay = min(delay*2, 30*time.Second) {
				err := verifier.Discover(ctx)
				if err == nil {
					log.InfoContext(ctx, "identity provider discovered", slog.String("issuer", issuer))
					return nil
				}
				log.WarnContext(ctx, "identity provider discovery failed, retrying", slog.Any("error", err))
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(delay):
				}
			}
		})
		return nil, nil
	}
}
