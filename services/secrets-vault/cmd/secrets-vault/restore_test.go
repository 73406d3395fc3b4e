package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup/s3test"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// TestRestoreKeyring runs `restore-keyring` as the restore Job would: with the migration
// role's URL, the root key and the keyring bucket, and nothing else, against a database whose
// tenant_keys came back empty from a dump.
func TestRestoreKeyring(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.New(t, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "kek")
	require.NoError(t, kek.NewKeyFile(keyPath))
	env := map[string]string{
		"MIGRATION_DATABASE_URL":   pg.MigrationURL,
		"FORGE_KEY_PROVIDER":       "file://" + keyPath,
		"FORGE_KEYRING_BACKUP_URL": "file://" + filepath.Join(dir, "keyring"),
	}
	getenv := func(k string) string { return env[k] }

	provider, err := kek.Open(env["FORGE_KEY_PROVIDER"])
	require.NoError(t, err)
	backups, err := keybackup.Open(ctx, env["FORGE_KEYRING_BACKUP_URL"])
	require.NoError(t, err)
	t.Cleanup(func() { _ = backups.Close() })
	newVault := func() *vault.Vault {
		v, err := vault.New(vault.Config{Store: postgres.NewStore(pg.DB), KEK: provider, Backup: backups, CacheSize: -1})
		require.NoError(t, err)
		return v
	}
	actor := vault.Actor{Workload: "spiffe://forge.internal/apps", Purpose: vault.PurposeAppContent}
	item := func(data []byte) []vault.Item {
		return []vault.Item{{Binding: vault.Binding{Object: "app/1", Field: "name"}, Data: data}}
	}
	alice, bob := owner.New(), owner.New()
	v := newVault()
	cts, _, err := v.Encrypt(ctx, alice, actor, item([]byte("alice's app")))
	require.NoError(t, err)
	_, _, err = v.Encrypt(ctx, bob, actor, item([]byte("bob's app")))
	require.NoError(t, err)
	aliceKey, err := backups.Get(ctx, alice, 1)
	require.NoError(t, err)
	_, err = backups.DeleteOwner(ctx, bob) // bob's backups are gone
	require.NoError(t, err)
	_, err = pg.Migrator.Exec(ctx, `DELETE FROM tenant_keys`)
	require.NoError(t, err)

	cases := []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantErr string
		want    []string
	}{
		{name: "no configuration", args: []string{"restore-keyring"}, getenv: func(string) string { return "" },
			wantErr: "MIGRATION_DATABASE_URL is required (the migration role's URL); FORGE_KEY_PROVIDER is required"},
		{name: "unknown flag", args: []string{"restore-keyring", "-force"}, getenv: getenv, wantErr: "usage: secrets-vault restore-keyring [-strict]"},
		{name: "stray argument", args: []string{"restore-keyring", "now"}, getenv: getenv, wantErr: "usage: secrets-vault restore-keyring [-strict]"},
		{name: "first run: restores, reports the missing keys, succeeds", args: []string{"restore-keyring"}, getenv: getenv, want: []string{
			"owners in the keyring backups: 1\n", "key versions restored: 1\n", "keyrings with keys missing: 1\n",
			"keys missing " + bob.String() + " (key v1): shredded after the dump? data-lifecycle replay-ledger re-runs the purge\n", "done\n",
		}},
		{name: "second run, strict: changes nothing, fails on the missing keys", args: []string{"restore-keyring", "-strict"}, getenv: getenv,
			wantErr: "1 keyrings with keys missing (-strict)", want: []string{
				"key versions restored: 0\n", "key versions already present: 1\n", "nothing changed\n",
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(ctx, c.args, c.getenv, &out)
			if c.wantErr != "" {
				require.ErrorContains(t, err, c.wantErr)
			} else {
				require.NoError(t, err)
			}
			for _, w := range c.want {
				require.Contains(t, out.String(), w)
			}
			require.NotContains(t, out.String(), base64.StdEncoding.EncodeToString(aliceKey.Wrapped), "no wrapped key printed")
		})
	}

	pts, err := newVault().Decrypt(ctx, alice, actor, item(cts[0]))
	require.NoError(t, err, "alice's keys are back")
	require.Equal(t, "alice's app", string(pts[0]))
	var shredded bool
	require.NoError(t, pg.Migrator.QueryRow(ctx, `SELECT shredded_at IS NOT NULL FROM keyrings WHERE owner_id = $1`, bob).Scan(&shredded))
	require.False(t, shredded, "a tenant without backups is reported, never tombstoned")
}

// TestRestoreKeyringRefusesVersionedBucket: restore-keyring refuses the keyring bucket serve
// would refuse (one that keeps object versions) before it writes anything, although the
// bucket holds a good backup.
func TestRestoreKeyringRefusesVersionedBucket(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.New(t, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	keyPath := filepath.Join(t.TempDir(), "kek")
	require.NoError(t, kek.NewKeyFile(keyPath))
	srv := s3test.Start(t)
	env := map[string]string{
		"MIGRATION_DATABASE_URL":   pg.MigrationURL,
		"FORGE_KEY_PROVIDER":       "file://" + keyPath,
		"FORGE_KEYRING_BACKUP_URL": srv.CreateBucket(t, "keyring"),
	}
	srv.SetVersioning(t, "keyring", gofakes3.VersioningEnabled)

	provider, err := kek.Open(env["FORGE_KEY_PROVIDER"])
	require.NoError(t, err)
	backups, err := keybackup.Open(ctx, env["FORGE_KEYRING_BACKUP_URL"])
	require.NoError(t, err)
	t.Cleanup(func() { _ = backups.Close() })
	v, err := vault.New(vault.Config{Store: postgres.NewStore(pg.DB), KEK: provider, Backup: backups, CacheSize: -1})
	require.NoError(t, err)
	alice := owner.New()
	_, _, err = v.Encrypt(ctx, alice, vault.Actor{Workload: "spiffe://forge.internal/apps", Purpose: vault.PurposeAppContent},
		[]vault.Item{{Binding: vault.Binding{Object: "app/1", Field: "name"}, Data: []byte("alice's app")}})
	require.NoError(t, err)
	_, err = backups.Get(ctx, alice, 1)
	require.NoError(t, err, "alice's key is backed up")
	_, err = pg.Migrator.Exec(ctx, `DELETE FROM tenant_keys`)
	require.NoError(t, err)

	var out bytes.Buffer
	err = run(ctx, []string{"restore-keyring"}, func(k string) string { return env[k] }, &out)
	require.ErrorContains(t, err, `restore-keyring: keybackup: bucket "keyring" has versioning Enabled`)
	require.Empty(t, out.String(), "no summary: nothing was attempted")
	var keys int
	require.NoError(t, pg.Migrator.QueryRow(ctx, `SELECT count(*) FROM tenant_keys`).Scan(&keys))
	require.Zero(t, keys, "nothing restored")
}
