package vault

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/forgeapps/backbone/pkg/owner"
)

// shredBatch bounds the rows one shred transaction deletes.
const shredBatch = 500

// ShredResult is what a shred destroyed, over every attempt (read from the tombstone).
type ShredResult struct {
	Destroyed      []uint32
	SecretsDeleted int64
	RowsDeleted    int64
}

// Shred crypto-shreds a tenant: it writes the tombstone and destroys every key version in the
// live table in one transaction (from then on every use answers ErrShredded and no key can be
// created), then deletes the keyring backups, then the tenant's remaining rows in bounded
// batches. It is idempotent and resumable: a repeated call finishes what an interrupted one
// left and reports the same totals. The events inbox is left to the purge consumer, which
// deletes it with its report (see package events).
func (v *Vault) Shred(ctx context.Context, o owner.ID) (ShredResult, error) {
	v.cache.drop(o)
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		if _, err := tx.Tombstone(ctx, v.now()); err != nil {
			return err
		}
		destroyed, err := tx.DeleteKeysBelow(ctx, ^uint32(0))
		if err != nil {
			return err
		}
		return tx.RecordShred(ctx, destroyed, 0, int64(len(destroyed)))
	})
	// Dropped again: a load that raced the tombstone must not leave keys cached.
	v.cache.drop(o)
	if err != nil {
		return ShredResult{}, err
	}
	n, err := v.backup.DeleteOwner(ctx, o)
	if err != nil {
		return ShredResult{}, fmt.Errorf("vault: shred keyring backups: %w", err)
	}
	left, err := v.backup.Versions(ctx, o)
	if err != nil {
		return ShredResult{}, fmt.Errorf("vault: shred keyring backups: verify: %w", err)
	}
	if len(left) > 0 {
		return ShredResult{}, fmt.Errorf("vault: shred keyring backups: %d versions still listed", len(left))
	}

	steps := []struct {
		name    string
		secrets bool
		run     func(ctx context.Context, tx StoreTx) (int64, error)
	}{
		{"secrets", true, func(ctx context.Context, tx StoreTx) (int64, error) { return tx.DeleteSecretsBatch(ctx, shredBatch) }},
		{"apps", false, func(ctx context.Context, tx StoreTx) (int64, error) { return tx.DeleteAppsBatch(ctx, shredBatch) }},
		{"audit", false, func(ctx context.Context, tx StoreTx) (int64, error) { return tx.PurgeAuditBatch(ctx, shredBatch) }},
	}
	for _, step := range steps {
		for {
			var n int64
			err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
				var err error
				if n, err = step.run(ctx, tx); err != nil || n == 0 {
					return err
				}
				secrets := int64(0)
				if step.secrets {
					secrets = n
				}
				return tx.RecordShred(ctx, nil, secrets, n)
			})
			if err != nil {
				return ShredResult{}, fmt.Errorf("vault: shred %s: %w", step.name, err)
			}
			if n < shredBatch {
				break
			}
		}
	}
	var st KeyringState
	err = v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		var err error
		st, err = tx.Keyring(ctx, false)
		return err
	})
	if err != nil {
		return ShredResult{}, err
	}
	v.log.InfoContext(ctx, "tenant shredded", slog.String("owner_id", o.String()),
		slog.Any("key_versions_destroyed", st.Destroyed), slog.Int("backups_deleted", n),
		slog.Int64("rows_deleted", st.RowsDeleted))
	return ShredResult{Destroyed: st.Destroyed, SecretsDeleted: st.SecretsDeleted, RowsDeleted: st.RowsDeleted}, nil
}
