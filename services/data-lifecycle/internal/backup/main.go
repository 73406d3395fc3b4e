package backup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// buckets (development, tests)
	_ "gocloud.dev/blob/s3blob"   // s3:// buckets (production)
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/telemetry"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/config"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/keyprovider"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
)

// Main runs `backup`, `prune`, `restore -backup KEY` (the target database from
// RESTORE_DATABASE_URL) or `replay-ledger -since TIME`.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	log := telemetry.NewLogger(stdout, config.Name, telemetry.ParseLevel(getenv("FORGE_LOG_LEVEL")))
	switch args[0] {
	case "replay-ledger":
		return replayMain(ctx, args[1:], getenv, log)
	case "restore":
		return restoreMain(ctx, args[1:], getenv, log)
	}
	cfg, err := config.LoadBackup(getenv)
	if err != nil {
		return err
	}
	j, closeFn, err := openJob(ctx, cfg.BlobURL, cfg.KeyProvider, log, cfg.Retention)
	if err != nil {
		return err
	}
	defer closeFn()
	switch args[0] {
	case "backup":
		return j.Backup(ctx, cfg.DatabaseURL.Reveal(), cfg.Targets)
	case "prune":
		return j.Prune(ctx)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// openJob opens the backup bucket and key.
func openJob(ctx context.Context, blobURL, keyProvider string, log *slog.Logger, retention time.Duration) (*Job, func(), error) {
	keys, err := keyprovider.Open(keyProvider)
	if err != nil {
		return nil, nil, err
	}
	bucket, err := blob.OpenBucket(ctx, blobURL)
	if err != nil {
		return nil, nil, fmt.Errorf("backup bucket: %w", err)
	}
	return &Job{Bucket: bucket, Keys: keys, Log: log, Now: time.Now, Retention: retention}, func() { _ = bucket.Close() }, nil
}

// restoreMain loads one dump (-backup, its object key) into the database named by
// RESTORE_DATABASE_URL. The URL is never a flag: a password on the command line is visible
// to every user of the machine.
func restoreMain(ctx context.Context, args []string, getenv func(string) string, log *slog.Logger) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("backup", "", "the dump's object key (dumps/<service>/...)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("restore: %w (usage: restore -backup dumps/<service>/<file>, the target in RESTORE_DATABASE_URL)", err)
	}
	if *name == "" || fs.NArg() > 0 {
		return errors.New("restore: usage: restore -backup dumps/<service>/<file> (the target database in RESTORE_DATABASE_URL)")
	}
	cfg, err := config.LoadRestore(getenv)
	if err != nil {
		return err
	}
	j, closeFn, err := openJob(ctx, cfg.BlobURL, cfg.KeyProvider, log, 0)
	if err != nil {
		return err
	}
	defer closeFn()
	h, err := j.Restore(ctx, *name, cfg.TargetURL.Reveal())
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "restored; now run replay-ledger", slog.String("service", h.Service),
		slog.Time("taken_at", h.TakenAt))
	return nil
}

// replayMain purges again every tenant of the deletion ledger purged since -since (the time
// the restored backup was taken): each is disabled downstream (the restore brought its account
// back) and its purge fanned out; the running service completes it as usual.
func replayMain(ctx context.Context, args []string, getenv func(string) string, log *slog.Logger) error {
	fs := flag.NewFlagSet("replay-ledger", flag.ContinueOnError)
	since := fs.String("since", "", "RFC 3339 time the restored backup was taken")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, *since)
	if err != nil {
		return fmt.Errorf("replay-ledger: -since: %w", err)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	ledger, err := blob.OpenBucket(ctx, cfg.BackupBlobURL)
	if err != nil {
		return err
	}
	defer ledger.Close()
	db, err := database.Open(ctx, cfg.DatabaseURL.Reveal(), database.Options{Schema: postgres.Schema})
	if err != nil {
		return err
	}
	defer db.Close()
	outbox, err := events.NewOutbox(events.OutboxConfig{Region: cfg.Region})
	if err != nil {
		return err
	}
	src, err := mtls.NewSource(cfg.TLS, cfg.TrustDomain, log)
	if err != nil {
		return err
	}
	dial := func(addr, name string) (*grpc.ClientConn, error) {
		return grpcclient.Dial(addr, src.ClientCredentials(workload.Must(cfg.TrustDomain, name)), nil)
	}
	tc, err := dial(cfg.TenantAddr, workload.Tenant)
	if err != nil {
		return err
	}
	defer tc.Close()
	ac, err := dial(cfg.AppsAddr, workload.Apps)
	if err != nil {
		return err
	}
	defer ac.Close()
	return Replay(ctx, ReplayDeps{
		Ledger: ledger, Store: postgres.New(db, outbox),
		Tenant: tenantv1.NewTenantAdminServiceClient(tc), Apps: appsv1.NewAppsInternalServiceClient(ac),
		Now: time.Now, Log: log,
	}, t)
}

// ReplayDeps is what a ledger replay needs.
type ReplayDeps struct {
	Ledger *blob.Bucket
	Store  *postgres.Store
	Tenant tenantv1.TenantAdminServiceClient
	Apps   appsv1.AppsInternalServiceClient
	Now    func() time.Time
	Log    *slog.Logger
}

// Replay purges again every ledger entry completed at or after since.
func Replay(ctx context.Context, d ReplayDeps, since time.Time) error {
	entries, err := ReadLedger(ctx, d.Ledger, since)
	if err != nil {
		return err
	}
	sys := owner.NewContext(ctx, owner.Owner{})
	for _, e := range entries {
		id, err := owner.Parse(e.OwnerID)
		if err != nil {
			return fmt.Errorf("replay: ledger entry %s: %w", e.DeletionID, err)
		}
		region, err := owner.ParseRegion(e.HomeRegion)
		if err != nil {
			return fmt.Errorf("replay: ledger entry %s: %w", e.DeletionID, err)
		}
		if _, err := d.Tenant.DisableTenant(sys, &tenantv1.DisableTenantRequest{OwnerId: id.String()}); err != nil {
			return fmt.Errorf("replay %s: tenant DisableTenant: %w", e.DeletionID, err)
		}
		if _, err := d.Apps.DisableOwner(sys, &appsv1.DisableOwnerRequest{OwnerId: id.String()}); err != nil {
			return fmt.Errorf("replay %s: apps DisableOwner: %w", e.DeletionID, err)
		}
		_, hash, err := lifecycle.NewToken(lifecycle.ReceiptPrefix)
		if err != nil {
			return err
		}
		newID, started, err := d.Store.ReplayPurge(ctx, owner.Owner{ID: id, HomeRegion: region}, lifecycle.StoreNames(), hash, d.Now())
		if err != nil {
			return fmt.Errorf("replay %s: %w", e.DeletionID, err)
		}
		d.Log.InfoContext(ctx, "ledger replayed", slog.String("ledger_deletion_id", e.DeletionID),
			slog.String("deletion_id", newID.String()), slog.Bool("started", started))
	}
	return nil
}
