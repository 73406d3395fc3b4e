// Package server wires data-lifecycle into pkg/service: its spec (schema, posture, workload
// table) and its setup (clients of tenant, apps and secrets-vault, object storage, the
// signing key, the workflows, the consumers and the scheduler). cmd/data-lifecycle calls it
// with the wall clock; tests call it with a clock they move.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// buckets (development, tests)
	_ "gocloud.dev/blob/s3blob"   // s3:// buckets (production)
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/database"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/service"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/config"
	lcevents "github.com/forgeapps/backbone/services/data-lifecycle/internal/events"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/grpcapi"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/keyprovider"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"
)

// Spec is data-lifecycle's service spec.
func Spec(cfg config.Config) service.Spec {
	return service.Spec{
		Base:  cfg.Base,
		Table: grpcapi.Table(),
		Database: &service.Database{
			Schema:  postgres.Schema,
			Sources: postgres.Sources(),
			Posture: database.Posture{DefinerFunctions: postgres.DefinerFunctions()},
		},
		Events: true,
	}
}

// Setup builds the service on a connected runtime, with clock as the time every rule reads.
func Setup(cfg config.Config, clock lifecycle.Clock) service.Setup {
	return func(ctx context.Context, rt *service.Runtime) (func(grpc.ServiceRegistrar), error) {
		dial := func(addr, name string) (*grpc.ClientConn, error) { return rt.Dial(addr, name) }
		tc, err := dial(cfg.TenantAddr, workload.Tenant)
		if err != nil {
			return nil, err
		}
		ac, err := dial(cfg.AppsAddr, workload.Apps)
		if err != nil {
			return nil, err
		}
		vc, err := dial(cfg.VaultAddr, workload.SecretsVault)
		if err != nil {
			return nil, err
		}
		objects, err := blob.OpenBucket(ctx, cfg.BlobURL)
		if err != nil {
			return nil, fmt.Errorf("object storage: %w", err)
		}
		ledger, err := blob.OpenBucket(ctx, cfg.BackupBlobURL)
		if err != nil {
			return nil, fmt.Errorf("backup storage: %w", err)
		}
		if cfg.CreateSigningKey {
			if _, err := os.Stat(cfg.SigningKeyFile); errors.Is(err, fs.ErrNotExist) {
				if _, err := keyprovider.WriteSigningKey(cfg.SigningKeyFile); err != nil {
					return nil, err
				}
				rt.Logger.WarnContext(ctx, "development mode: made a certificate signing key", "path", cfg.SigningKeyFile)
			}
		}
		key, err := keyprovider.LoadSigningKey(cfg.SigningKeyFile)
		if err != nil {
			return nil, err
		}
		signer, err := lifecycle.NewSigner(key)
		if err != nil {
			return nil, err
		}
		w, err := workflow.New(workflow.Config{
			Store:  postgres.New(rt.DB, rt.Outbox),
			Tenant: tenantv1.NewTenantAdminServiceClient(tc), Apps: appsv1.NewAppsInternalServiceClient(ac),
			Keys: vaultv1.NewKeyServiceClient(vc), Crypto: vaultv1.NewCryptoServiceClient(vc),
			Objects: objects, Ledger: ledger, Signer: signer, Clock: clock,
			Logger: rt.Logger, Meter: rt.Telemetry.Meter,
			BackupRetention: cfg.BackupRetention, PurgeRetryAfter: cfg.PurgeRetryAfter,
		})
		if err != nil {
			return nil, err
		}
		consumers := lcevents.Consumers(w, rt.DB, rt.Logger)
		rt.Go("consumers", func(ctx context.Context) error { return lcevents.Run(ctx, rt.JetStream, consumers) })
		rt.Go("scheduler", func(ctx context.Context) error { return w.RunScheduler(ctx, cfg.Tick) })
		rt.Go("buckets", func(ctx context.Context) error {
			<-ctx.Done()
			_ = objects.Close()
			_ = ledger.Close()
			return nil
		})
		return func(s grpc.ServiceRegistrar) { grpcapi.Register(s, w) }, nil
	}
}
