package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/config"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

const restoreUsage = "usage: secrets-vault restore-keyring [-strict] (MIGRATION_DATABASE_URL, FORGE_KEY_PROVIDER and FORGE_KEYRING_BACKUP_URL from the environment)"

// restoreKeyring runs `secrets-vault restore-keyring [-strict]`: it loads the wrapped tenant
// keys from the keyring backups into a vault database restored from a dump, and prints what it
// did. Refused backups always make it fail; keys still missing afterwards (tenants shredded
// after the dump, or a wrong bucket) make it fail only with -strict, since the usual cause is
// put right by data-lifecycle's replay-ledger, which runs next.
func restoreKeyring(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("restore-keyring", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	strict := fs.Bool("strict", false, "fail when a keyring still has versions without a key")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("restore-keyring: %w (%s)", err, restoreUsage)
	}
	if fs.NArg() > 0 {
		return errors.New("restore-keyring: " + restoreUsage)
	}
	cfg, err := config.LoadRestoreKeyring(getenv)
	if err != nil {
		return err
	}
	provider, err := kek.Open(cfg.KeyProvider)
	if err != nil {
		return err
	}
	backups, err := keybackup.OpenExisting(ctx, cfg.KeyringBackupURL)
	if err != nil {
		return err
	}
	defer backups.Close()
	// The bucket serve would refuse is refused here too, before anything is written.
	if err := backups.CheckUnversioned(ctx); err != nil {
		return fmt.Errorf("restore-keyring: %w", err)
	}
	store, err := postgres.OpenRestore(ctx, cfg.MigrationDatabaseURL.Reveal())
	if err != nil {
		return err
	}
	defer func() { _ = store.Close(context.WithoutCancel(ctx)) }()

	rep, err := vault.RestoreKeyrings(ctx, vault.RestoreConfig{Store: store, KEK: provider, Backups: backups})
	if werr := rep.WriteSummary(stdout); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("restore-keyring: stopped (the owners counted above are committed; run it again): %w", err)
	}
	return rep.Err(*strict)
}
