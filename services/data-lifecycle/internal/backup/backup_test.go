package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/backup"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/config"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/keyprovider"
)

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}

// vaultSpec is secrets-vault's schema as its migrations in the repository make it.
func vaultSpec(t *testing.T) pgtest.Spec {
	return pgtest.Spec{Schema: "vault", Sources: []database.Source{
		{Name: events.MigrationSourceName, FS: events.Migrations()},
		{Name: "vault", FS: os.DirFS(filepath.Join(repoRoot(t), "services", "secrets-vault", "internal", "postgres", "migrations"))},
	}}
}

type logBuf struct{ bytes.Buffer }

func newJob(t *testing.T, now *time.Time) (*backup.Job, *blob.Bucket, *logBuf, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	w, err := keyprovider.NewStatic(key)
	require.NoError(t, err)
	logs := &logBuf{}
	return &backup.Job{Bucket: b, Keys: w, Log: slog.New(slog.NewJSONHandler(logs, nil)), Now: func() time.Time { return *now },
		Retention: 30 * 24 * time.Hour}, b, logs, dir
}

// TestDumpRestoreExcludesKeys dumps a secrets-vault database holding a wrapped key and a
// secret: the dump is sealed (no plaintext in the object), the key table's rows are not in it,
// and a restore into a freshly migrated database brings back everything else.
func TestDumpRestoreExcludesKeys(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t, vaultSpec(t))
	o := owner.New()
	marker := "wrapped-key-marker-" + o.String()
	_, err := src.Migrator.Exec(ctx, `INSERT INTO keyrings (owner_id, current_version, min_decrypt_version) VALUES ($1, 1, 1)`, o)
	require.NoError(t, err)
	_, err = src.Migrator.Exec(ctx, `INSERT INTO tenant_keys (owner_id, version, kek_id, wrapped, created_at) VALUES ($1, 1, 'k', $2, now())`, o, []byte(marker))
	require.NoError(t, err)
	_, err = src.Migrator.Exec(ctx, `INSERT INTO registered_apps (owner_id, app_id, registered_at) VALUES ($1, $1, now())`, o)
	require.NoError(t, err)

	now := time.Now().UTC()
	job, _, logs, dir := newJob(t, &now)
	name, size, err := job.Dump(ctx, src.MigrationURL, config.Target{Service: "secrets-vault", Schema: "vault", ExcludeData: []string{config.VaultKeyTable}})
	require.NoError(t, err)
	require.Positive(t, size)
	raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	require.NoError(t, err)
	require.NotContains(t, string(raw), o.String(), "the dump is sealed")
	require.Contains(t, logs.String(), `"msg":"backup written"`)

	// The plaintext stream holds no key material.
	h, r, closeFn, err := job.Open(ctx, name)
	require.NoError(t, err)
	plain, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, closeFn())
	require.NotContains(t, string(plain), marker)
	require.Contains(t, logs.String(), `"msg":"backup read"`)
	var excluded bool
	for _, tb := range h.Tables {
		if tb.Name == config.VaultKeyTable {
			excluded = tb.Excluded
		}
	}
	require.True(t, excluded)

	dst := pgtest.New(t, vaultSpec(t))
	_, err = job.Restore(ctx, name, dst.MigrationURL)
	require.NoError(t, err)
	var keyrings, keys, apps int
	require.NoError(t, dst.Migrator.QueryRow(ctx, `SELECT (SELECT count(*) FROM keyrings), (SELECT count(*) FROM tenant_keys), (SELECT count(*) FROM registered_apps)`).Scan(&keyrings, &keys, &apps))
	require.Equal(t, []int{1, 0, 1}, []int{keyrings, keys, apps})

	// A restore refuses a non-empty target.
	_, err = job.Restore(ctx, name, dst.MigrationURL)
	require.ErrorContains(t, err, "not empty")

	// A renamed key table is refused, never silently dumped.
	_, _, err = job.Dump(ctx, src.MigrationURL, config.Target{Service: "secrets-vault", Schema: "vault", ExcludeData: []string{"wrapped_keys"}})
	require.ErrorContains(t, err, "does not exist")

	// Another backup key cannot open the dump.
	other, _, _, _ := newJob(t, &now)
	other.Bucket = job.Bucket
	_, _, _, err = other.Open(ctx, name)
	require.Error(t, err)
}

// TestPruneRetention: dumps older than the retention are deleted (and logged), newer ones kept;
// ledger entries go once every backup that could predate their purge has expired.
func TestPruneRetention(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t, vaultSpec(t))
	start := time.Now().UTC()
	now := start
	job, b, logs, _ := newJob(t, &now)
	target := config.Target{Service: "secrets-vault", Schema: "vault", ExcludeData: []string{config.VaultKeyTable}}
	old, _, err := job.Dump(ctx, src.MigrationURL, target)
	require.NoError(t, err)
	now = start.Add(20 * 24 * time.Hour)
	recent, _, err := job.Dump(ctx, src.MigrationURL, target)
	require.NoError(t, err)
	require.NoError(t, b.WriteAll(ctx, backup.LedgerPrefix+"d1.json",
		[]byte(`{"owner_id":"x","deletion_id":"d1","complete_time":"`+start.Format(time.RFC3339)+`","backups_expire_by":"`+start.Add(30*24*time.Hour).Format(time.RFC3339)+`"}`), nil))

	now = start.Add(30*24*time.Hour - time.Minute)
	require.NoError(t, job.Prune(ctx))
	for _, k := range []string{old, recent, backup.LedgerPrefix + "d1.json"} {
		ok, err := b.Exists(ctx, k)
		require.NoError(t, err)
		require.True(t, ok, k)
	}
	now = start.Add(30*24*time.Hour + time.Minute)
	require.NoError(t, job.Prune(ctx))
	ok, err := b.Exists(ctx, old)
	require.NoError(t, err)
	require.False(t, ok, "older than 30 days: deleted")
	ok, err = b.Exists(ctx, recent)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.Exists(ctx, backup.LedgerPrefix+"d1.json")
	require.NoError(t, err)
	require.False(t, ok, "no backup can predate this purge any more")
	require.Contains(t, logs.String(), `"msg":"backup deleted"`)
	require.True(t, strings.Contains(logs.String(), old))
	// The access log is in the bucket too.
	it := b.List(&blob.ListOptions{Prefix: backup.AccessLogPrefix})
	n := 0
	for {
		_, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		n++
	}
	require.Equal(t, 3, n, "written, written, deleted")
}

// TestRestoreCommand runs `restore` as the restore Job does: the dump as -backup, the target
// database from RESTORE_DATABASE_URL (never a flag: a password on the command line is visible
// to every user of the machine), and no backup database (a restore never connects to one).
func TestRestoreCommand(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t, vaultSpec(t))
	o := owner.New()
	_, err := src.Migrator.Exec(ctx, `INSERT INTO registered_apps (owner_id, app_id, registered_at) VALUES ($1, $1, now())`, o)
	require.NoError(t, err)

	dir := t.TempDir()
	keyPath := filepath.Join(t.TempDir(), "backup.key")
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyPath, key, 0o600))
	w, err := keyprovider.Open("file://" + keyPath)
	require.NoError(t, err)
	b, err := fileblob.OpenBucket(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	job := &backup.Job{Bucket: b, Keys: w, Log: slog.New(slog.DiscardHandler), Now: time.Now, Retention: time.Hour}
	name, _, err := job.Dump(ctx, src.MigrationURL, config.Target{Service: "secrets-vault", Schema: "vault", ExcludeData: []string{config.VaultKeyTable}})
	require.NoError(t, err)

	dst := pgtest.New(t, vaultSpec(t))
	env := map[string]string{
		"RESTORE_DATABASE_URL":  dst.MigrationURL,
		"FORGE_BACKUP_BLOB_URL": "file://" + dir,
		"FORGE_KEY_PROVIDER":    "file://" + keyPath,
	}
	without := func(key string) func(string) string {
		return func(k string) string {
			if k == key {
				return ""
			}
			return env[k]
		}
	}
	restored := func() int {
		var n int
		require.NoError(t, dst.Migrator.QueryRow(ctx, `SELECT count(*) FROM registered_apps`).Scan(&n))
		return n
	}
	for _, tc := range []struct {
		name   string
		args   []string
		getenv func(string) string
		want   string
	}{
		{"the target as a flag", []string{"restore", "-backup", name, "-into", dst.MigrationURL}, without(""), "flag provided but not defined: -into"},
		{"no target", []string{"restore", "-backup", name}, without("RESTORE_DATABASE_URL"), "RESTORE_DATABASE_URL is required"},
		{"no dump", []string{"restore"}, without(""), "usage"},
		{"no backup key", []string{"restore", "-backup", name}, without("FORGE_KEY_PROVIDER"), "FORGE_KEY_PROVIDER is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := backup.Main(ctx, tc.args, tc.getenv, io.Discard)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), dst.MigrationURL)
			require.Zero(t, restored(), "nothing restored")
		})
	}

	var out bytes.Buffer
	require.NoError(t, backup.Main(ctx, []string{"restore", "-backup", name}, without("BACKUP_DATABASE_URL"), &out))
	require.Equal(t, 1, restored())
	require.Contains(t, out.String(), "restored; now run replay-ledger")
	require.NotContains(t, out.String(), dst.MigrationURL, "the target URL is never logged")
}
