// Command secrets-vault runs the vault: the region's tenant key hierarchy, app secrets, the
// encryption API of the other services and crypto-shredding. `secrets-vault serve` (the
// default) serves gRPC over mTLS; `secrets-vault migrate` applies the schema's migrations as
// the migration role and exits; `secrets-vault restore-keyring [-strict]` loads the tenant
// keys from the keyring backups into a database restored from a dump, and exits.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/service"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/config"
	vaultevents "github.com/forgeapps/backbone/services/secrets-vault/internal/events"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/grpcapi"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "secrets-vault:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "restore-keyring" {
		return restoreKeyring(ctx, args[1:], getenv, stdout)
	}
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
			Posture: database.Posture{DefinerFunctions: postgres.DefinerFunctions()},
		},
		Events: true,
	}
	return service.Main(ctx, args, stdout, spec, func(ctx context.Context, rt *service.Runtime) (func(grpc.ServiceRegistrar), error) {
		if err := cfg.RequireServe(); err != nil {
			return nil, err
		}
		provider, err := kek.Open(cfg.KeyProvider)
		if err != nil {
			return nil, err
		}
		backup, err := keybackup.Open(ctx, cfg.KeyringBackupURL)
		if err != nil {
			return nil, err
		}
		// A bucket that keeps object versions would keep every shredded tenant's keys.
		if err := backup.CheckUnversioned(ctx); err != nil {
			_ = backup.Close()
			return nil, err
		}
		wake := make(chan struct{}, 1)
		v, err := vault.New(vault.Config{
			Store:     postgres.NewStore(rt.DB),
			KEK:       provider,
			Backup:    backup,
			CacheSize: cfg.KeyCacheSize,
			CacheTTL:  cfg.KeyCacheTTL,
			Logger:    rt.Logger,
			Self:      rt.TLS.Identity().String(),
			OnRotate: func() {
				select {
				case wake <- struct{}{}:
				default:
				}
			},
		})
		if err != nil {
			return nil, err
		}
		consumers := &vaultevents.Consumers{
			DB: rt.DB, Outbox: rt.Outbox, Vault: v, Logger: rt.Logger,
			Self: rt.TLS.Identity().String(), Telemetry: rt.Telemetry,
		}
		rt.Go("event consumers", func(ctx context.Context) error { return consumers.Run(ctx, rt.JetStream) })
		rt.Go("rewrap", func(ctx context.Context) error {
			defer backup.Close()
			return v.RunRewrap(ctx, cfg.RewrapInterval, wake)
		})
		srv := grpcapi.New(v, rt.Logger)
		return func(r grpc.ServiceRegistrar) { grpcapi.Register(r, srv) }, nil
	})
}
