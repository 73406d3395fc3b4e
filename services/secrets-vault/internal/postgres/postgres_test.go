package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// TestRecordUseCommitDurability: a use marked AsyncCommit relaxes synchronous_commit for its
// own transaction only; every other use, and the next transaction on any connection, commits
// durably. The audit row is written either way.
func TestRecordUseCommitDurability(t *testing.T) {
	pg := pgtest.New(t, pgtest.Spec{Schema: Schema, Sources: Sources()})
	ctx := context.Background()
	alice := owner.New()
	require.NoError(t, pg.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
		_, err := (&storeTx{tx: tx, owner: alice}).CreateKeyring(ctx)
		return err
	}))
	setting := func(ctx context.Context, tx database.Tx) string {
		var s string
		require.NoError(t, tx.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&s))
		return s
	}
	cases := []struct {
		name  string
		async bool
		want  string
	}{
		{"durable", false, "on"},
		{"async", true, "off"},
		{"durable after async", false, "on"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := uuid.New()
			require.NoError(t, pg.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
				ok, err := (&storeTx{tx: tx, owner: alice}).RecordUse(ctx, vault.AuditEntry{ID: id, Time: time.Now(),
					Workload: "spiffe://forge.internal/apps", Action: vault.ActionDecrypt, Subject: "key v1",
					Purpose: vault.PurposeAppContent, Items: 1}, vault.UseCheck{OldestVersion: 1, AsyncCommit: c.async})
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, c.want, setting(ctx, tx))
				return nil
			}))
			var n int
			require.NoError(t, pg.Migrator.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE id = $1`, id).Scan(&n))
			require.Equal(t, 1, n)
			// No connection of the pool keeps the setting.
			for range 4 {
				require.NoError(t, pg.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
					require.Equal(t, "on", setting(ctx, tx))
					return nil
				}))
			}
		})
	}
	t.Run("refused by the key policy", func(t *testing.T) {
		require.NoError(t, pg.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
			ok, err := (&storeTx{tx: tx, owner: alice}).RecordUse(ctx, vault.AuditEntry{ID: uuid.New(), Time: time.Now(),
				Workload: "w", Action: vault.ActionDecrypt, Subject: "key v9", Purpose: vault.PurposeServe, Items: 1},
				vault.UseCheck{Current: 9, AsyncCommit: true})
			require.NoError(t, err)
			require.False(t, ok, "the policy check still runs")
			return nil
		}))
	})
}
