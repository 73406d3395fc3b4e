// Command apps runs the apps service: apps, prompts, references, versions, sharing and
// Discover. `apps serve` (the default) serves gRPC over mTLS; `apps migrate` applies the
// schema's migrations as the migration role and exits.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/service"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
	"github.com/forgeapps/backbone/services/apps/internal/blobstore"
	"github.com/forgeapps/backbone/services/apps/internal/config"
	appsevents "github.com/forgeapps/backbone/services/apps/internal/events"
	"github.com/forgeapps/backbone/services/apps/internal/grpcapi"
	"github.com/forgeapps/backbone/services/apps/internal/postgres"
	"github.com/forgeapps/backbone/services/apps/internal/tenant"
	"github.com/forgeapps/backbone/services/apps/internal/vault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "apps:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	spec := service.Spec{
		Base:  cfg.Base,
		Table: grpcapi.Table(),
		Database: &service.Database{
			Schema:  postgres.Schema,
			Sources: postgres.Sources(),
			Posture: postgres.Posture(),
		},
		Events: true,
	}
	return service.Main(ctx, args, stdout, spec, func(ctx context.Context, rt *service.Runtime) (func(grpc.ServiceRegistrar), error) {
		if err := cfg.RequireServe(); err != nil {
			return nil, err
		}
		blobs, err := blobstore.Open(ctx, cfg.BlobURL)
		if err != nil {
			return nil, err
		}
		vaultConn, err := rt.Dial(cfg.VaultAddr, workload.SecretsVault)
		if err != nil {
			return nil, err
		}
		tenantConn, err := rt.Dial(cfg.TenantAddr, workload.Tenant)
		if err != nil {
			return nil, err
		}
		vc := vault.New(vaultConn, rt.Base.Region)
		store := postgres.NewStore(rt.DB, rt.Outbox, rt.Base.Region)
		svc, err := apps.New(apps.Config{
			Store: store, Crypto: vc, Blobs: blobs, Secrets: vc, Registry: vc,
			Tenants: tenant.New(tenantConn, rt.Base.Region), Logger: rt.Logger, Region: rt.Base.Region,
			SandboxDomain: cfg.SandboxDomain,
		})
		if err != nil {
			return nil, err
		}
		purge := appsevents.NewPurgeConsumer(svc, rt.Logger)
		rt.Go("purge consumer", func(ctx context.Context) error {
			cc := purge.Config()
			cc.Meter, cc.Tracer, cc.Propagator = rt.Telemetry.Meter, rt.Telemetry.Tracer, rt.Telemetry.Propagator
			cc.DeadLetter = func(ctx context.Context, dl events.DeadLetter) error { return events.RecordDeadLetter(ctx, rt.DB, dl) }
			return events.Consume(ctx, rt.JetStream, cc)
		})
		rt.Go("blob store", func(ctx context.Context) error {
			<-ctx.Done()
			return blobs.Close()
		})
		return grpcapi.New(svc).Register, nil
	})
}
