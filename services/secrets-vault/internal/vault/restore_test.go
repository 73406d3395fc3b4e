package vault_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// restoreEnv is a vault as production runs it (the postgres store over the runtime role, a
// file root key, a keyring backup directory), with the raw bucket under the backups so a test
// can tamper with objects, and the migration role to play the database restore.
type restoreEnv struct {
	pg      *pgtest.Env
	kek     kek.Provider
	bucket  *blob.Bucket
	backups *keybackup.Bucket
	vault   *vault.Vault
}

func newRestoreEnv(tb testing.TB) *restoreEnv {
	tb.Helper()
	pg := pgtest.New(tb, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	keyPath := filepath.Join(tb.TempDir(), "kek")
	require.NoError(tb, kek.NewKeyFile(keyPath))
	provider, err := kek.Open("file://" + keyPath)
	require.NoError(tb, err)
	bucket, err := fileblob.OpenBucket(tb.TempDir(), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = bucket.Close() })
	e := &restoreEnv{pg: pg, kek: provider, bucket: bucket, backups: keybackup.New(bucket)}
	e.vault = e.freshVault(tb)
	return e
}

// freshVault is a new vault over the same database, root key and backups, with no key cache:
// every call reads the keys from the database.
func (e *restoreEnv) freshVault(tb testing.TB) *vault.Vault {
	tb.Helper()
	v, err := vault.New(vault.Config{Store: postgres.NewStore(e.pg.DB), KEK: e.kek, Backup: e.backups, CacheSize: -1})
	require.NoError(tb, err)
	return v
}

// restore runs the restore as the command does: through the migration role's URL.
func (e *restoreEnv) restore(tb testing.TB) vault.RestoreReport {
	tb.Helper()
	ctx := context.Background()
	store, err := postgres.OpenRestore(ctx, e.pg.MigrationURL)
	require.NoError(tb, err)
	defer func() { require.NoError(tb, store.Close(ctx)) }()
	rep, err := vault.RestoreKeyrings(ctx, vault.RestoreConfig{Store: store, KEK: e.kek, Backups: e.backups})
	require.NoError(tb, err)
	return rep
}

// exec runs statements as the migration role (the tables' owner, outside RLS): what a dump
// restore leaves behind is played with it.
func (e *restoreEnv) exec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	_, err := e.pg.Migrator.Exec(context.Background(), sql, args...)
	require.NoError(tb, err)
}

// keyRows returns the stored wrapped keys of o by version.
func (e *restoreEnv) keyRows(tb testing.TB, o owner.ID) map[uint32][]byte {
	tb.Helper()
	rows, err := e.pg.Migrator.Query(context.Background(), `SELECT version, wrapped FROM tenant_keys WHERE owner_id = $1`, o)
	require.NoError(tb, err)
	defer rows.Close()
	out := map[uint32][]byte{}
	for rows.Next() {
		var (
			v int32
			w []byte
		)
		require.NoError(tb, rows.Scan(&v, &w))
		out[uint32(v)] = w
	}
	require.NoError(tb, rows.Err())
	return out
}

// keyring reads o's keyring row as the migration role (ok false when there is none).
func (e *restoreEnv) keyring(tb testing.TB, o owner.ID) (current, minDecrypt int32, shredded, ok bool) {
	tb.Helper()
	rows, err := e.pg.Migrator.Query(context.Background(),
		`SELECT current_version, min_decrypt_version, shredded_at IS NOT NULL FROM keyrings WHERE owner_id = $1`, o)
	require.NoError(tb, err)
	defer rows.Close()
	for rows.Next() {
		require.NoError(tb, rows.Scan(&current, &minDecrypt, &shredded))
		ok = true
	}
	require.NoError(tb, rows.Err())
	return current, minDecrypt, shredded, ok
}

// snapshot is every keyring and key row, as text, to compare two states of the database.
func (e *restoreEnv) snapshot(tb testing.TB) string {
	tb.Helper()
	var s string
	require.NoError(tb, e.pg.Migrator.QueryRow(context.Background(), `SELECT
		coalesce((SELECT string_agg(k::text, E'\n' ORDER BY k.owner_id) FROM keyrings k), '') || E'\n' ||
		coalesce((SELECT string_agg(t::text, E'\n' ORDER BY t.owner_id, t.version) FROM tenant_keys t), '')`).Scan(&s))
	return s
}

func objectKey(o owner.ID, v uint32) string { return fmt.Sprintf("keyring/%s/%010d.json", o, v) }

var appActor = vault.Actor{Workload: "spiffe://forge.internal/apps", Purpose: vault.PurposeAppContent}

// sealed is one ciphertext and what it holds.
type sealed struct {
	owner owner.ID
	item  vault.Item
	plain string
}

func seal(tb testing.TB, v *vault.Vault, o owner.ID, plain string) sealed {
	tb.Helper()
	b := vault.Binding{Object: "app/" + o.String(), Field: "name"}
	cts, _, err := v.Encrypt(context.Background(), o, appActor, []vault.Item{{Binding: b, Data: []byte(plain)}})
	require.NoError(tb, err)
	return sealed{owner: o, item: vault.Item{Binding: b, Data: cts[0]}, plain: plain}
}

func decrypt(v *vault.Vault, s sealed) (string, error) {
	pts, err := v.Decrypt(context.Background(), s.owner, appActor, []vault.Item{s.item})
	if err != nil {
		return "", err
	}
	return string(pts[0]), nil
}

type refusal struct {
	owner   owner.ID
	version uint32
}

// TestRestoreKeyrings plays a vault database restored from a dump (tenant_keys left out, as the
// backup job does) against the keyring backups, with each case a restore must handle: a plain
// tenant, one rotated before the dump, one shredded (with a backup an interrupted shred left
// behind), one created (and rotated) after the dump, one rotated after it, one with a retired
// version whose backup an interrupted retirement left behind, one whose newest backup is lost,
// one whose backups are all gone, and tampered or conflicting backups.
func TestRestoreKeyrings(t *testing.T) {
	ctx := context.Background()
	e := newRestoreEnv(t)
	v := e.vault
	var (
		plain, rotated, shredded, created, rotatedLater     = owner.New(), owner.New(), owner.New(), owner.New(), owner.New()
		noBackup, misnamed, foreignKey, otherRoot, conflict = owner.New(), owner.New(), owner.New(), owner.New(), owner.New()
		retired, newestLost                                 = owner.New(), owner.New()
	)
	readable := []sealed{seal(t, v, plain, "plain v1"), seal(t, v, rotated, "rotated v1")}
	_, err := v.RotateKey(ctx, rotated, appActor)
	require.NoError(t, err)
	readable = append(readable, seal(t, v, rotated, "rotated v2"), seal(t, v, created, "created v1"),
		seal(t, v, rotatedLater, "rotated later v1"))
	newestLostCT := seal(t, v, newestLost, "newest lost v1")
	retiredCT := seal(t, v, retired, "retired v1")
	for _, o := range []owner.ID{created, rotatedLater, retired, newestLost} {
		_, err = v.RotateKey(ctx, o, appActor)
		require.NoError(t, err)
	}
	readable = append(readable, seal(t, v, created, "created v2"), seal(t, v, rotatedLater, "rotated later v2"),
		seal(t, v, retired, "retired v2"))

	// An interrupted retirement: v1 is retired, its backup was not deleted yet.
	retiredObject, err := e.bucket.ReadAll(ctx, objectKey(retired, 1))
	require.NoError(t, err)
	_, err = v.RetireKeyVersions(ctx, retired, appActor, 2)
	require.NoError(t, err)
	require.NoError(t, e.bucket.WriteAll(ctx, objectKey(retired, 1), retiredObject, nil))

	shreddedCT := seal(t, v, shredded, "shredded v1")
	leftover, err := e.bucket.ReadAll(ctx, objectKey(shredded, 1))
	require.NoError(t, err)
	_, err = v.Shred(ctx, shredded)
	require.NoError(t, err)
	// An interrupted shred: the tombstone committed, one backup was not deleted yet.
	require.NoError(t, e.bucket.WriteAll(ctx, objectKey(shredded, 1), leftover, nil))

	noBackupCT := seal(t, v, noBackup, "no backup v1")
	for _, o := range []owner.ID{misnamed, foreignKey, otherRoot, conflict} {
		seal(t, v, o, "tampered")
	}

	// The dump restore: tenant_keys comes back empty (here one row is left, with other bytes,
	// to meet a conflict); the tenant created after the dump has no keyring; the tenant rotated
	// after it has the keyring of before.
	e.exec(t, `DELETE FROM tenant_keys WHERE owner_id <> $1`, conflict)
	e.exec(t, `UPDATE tenant_keys SET wrapped = '\x00010203' WHERE owner_id = $1`, conflict)
	e.exec(t, `DELETE FROM keyrings WHERE owner_id = $1`, created)
	e.exec(t, `UPDATE keyrings SET current_version = 1 WHERE owner_id = $1`, rotatedLater)
	// The bucket: one tenant's backups are gone, another's newest; three objects are not what
	// they claim.
	_, err = e.backups.DeleteOwner(ctx, noBackup)
	require.NoError(t, err)
	require.NoError(t, e.backups.Delete(ctx, newestLost, []uint32{2}))
	plainObject, err := e.bucket.ReadAll(ctx, objectKey(plain, 1))
	require.NoError(t, err)
	require.NoError(t, e.bucket.WriteAll(ctx, objectKey(misnamed, 1), plainObject, nil), "another owner's object under this name")
	plainKey, err := e.backups.Get(ctx, plain, 1)
	require.NoError(t, err)
	require.NoError(t, e.backups.Put(ctx, vault.WrappedKey{Owner: foreignKey, Version: 1, KEKID: e.kek.KeyID(),
		Wrapped: plainKey.Wrapped, Created: plainKey.Created}), "another owner's wrapped key, relabelled")
	require.NoError(t, e.backups.Put(ctx, vault.WrappedKey{Owner: otherRoot, Version: 1, KEKID: "file:0123456789abcdef",
		Wrapped: plainKey.Wrapped, Created: plainKey.Created}), "a key of another root key")

	before := e.keyRows(t, conflict)
	rep := e.restore(t)

	t.Run("report", func(t *testing.T) {
		require.Equal(t, 11, rep.Owners, "every owner folder of the bucket (not the one without backups)")
		require.Equal(t, 9, rep.Restored)
		require.Zero(t, rep.Present)
		require.Equal(t, 1, rep.KeyringsCreated)
		require.Equal(t, 1, rep.KeyringsAdvanced)
		require.Equal(t, 1, rep.Retired)
		require.Equal(t, []owner.ID{shredded}, rep.Tombstones)
		require.False(t, rep.MissingUnchecked)
		missing := map[owner.ID][]uint32{}
		for _, m := range rep.Missing {
			require.Equal(t, len(m.Versions), m.Count)
			missing[m.Owner] = m.Versions
		}
		require.Equal(t, map[owner.ID][]uint32{noBackup: {1}, misnamed: {1}, foreignKey: {1}, otherRoot: {1}, newestLost: {2}}, missing)
		reasons := map[refusal]string{}
		for _, r := range rep.Refused {
			reasons[refusal{r.Owner, r.Version}] = r.Reason
		}
		require.Len(t, reasons, 4)
		require.Contains(t, reasons[refusal{misnamed, 1}], "does not match its name")
		require.Contains(t, reasons[refusal{foreignKey, 1}], "does not unwrap")
		require.Contains(t, reasons[refusal{otherRoot, 1}], "root key")
		require.Contains(t, reasons[refusal{conflict, 1}], "another wrapped key is stored")
		require.Error(t, rep.Err(false), "refused backups fail the command")
		require.True(t, rep.Changed())
	})

	t.Run("keyrings", func(t *testing.T) {
		cases := []struct {
			name             string
			owner            owner.ID
			current, minimum int32
			shredded         bool
			versions         int
		}{
			{"plain", plain, 1, 1, false, 1},
			{"rotated before the dump", rotated, 2, 1, false, 2},
			{"created after the dump: spans its backups", created, 2, 1, false, 2},
			{"rotated after the dump: advanced", rotatedLater, 2, 1, false, 2},
			{"retired version: its backup not restored", retired, 2, 2, false, 1},
			{"newest backup lost: never lowered", newestLost, 2, 1, false, 1},
			{"shredded: tombstone kept, no key", shredded, 0, 0, true, 0},
			{"no backup: untouched, not tombstoned", noBackup, 1, 1, false, 0},
			{"misnamed object: not inserted", misnamed, 1, 1, false, 0},
			{"other owner's key: not inserted", foreignKey, 1, 1, false, 0},
			{"other root key: not inserted", otherRoot, 1, 1, false, 0},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				cur, minimum, isShredded, ok := e.keyring(t, c.owner)
				require.True(t, ok)
				require.Equal(t, c.shredded, isShredded)
				if !c.shredded {
					require.Equal(t, c.current, cur)
					require.Equal(t, c.minimum, minimum)
				}
				require.Len(t, e.keyRows(t, c.owner), c.versions)
			})
		}
		require.Equal(t, before, e.keyRows(t, conflict), "a stored key is never overwritten")
	})

	t.Run("decrypt through a fresh vault", func(t *testing.T) {
		fresh := e.freshVault(t)
		for _, s := range readable {
			got, err := decrypt(fresh, s)
			require.NoError(t, err, s.plain)
			require.Equal(t, s.plain, got)
		}
		again := seal(t, fresh, rotatedLater, "after the restore")
		require.Equal(t, byte(2), again.item.Data[4], "the advanced keyring encrypts under v2 again")

		_, err := decrypt(fresh, retiredCT)
		require.ErrorIs(t, err, vault.ErrRetired, "a retired version stays retired")
		_, err = decrypt(fresh, shreddedCT)
		require.ErrorIs(t, err, vault.ErrShredded, "the shredded tenant stays shredded")
		// Keys missing stay missing: the vault refuses to load a keyring without its current
		// key, and nothing is shredded.
		for _, s := range []sealed{noBackupCT, newestLostCT} {
			_, err = decrypt(fresh, s)
			require.ErrorContains(t, err, "is missing", s.plain)
			require.NotErrorIs(t, err, vault.ErrShredded, s.plain)
		}
	})

	t.Run("summary", func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, rep.WriteSummary(&out))
		s := out.String()
		require.Contains(t, s, "key versions restored: 9\n")
		require.Contains(t, s, "keyrings created: 1\n")
		require.Contains(t, s, "keyrings advanced to a newer version: 1\n")
		require.Contains(t, s, "tombstones skipped (shredded tenants): 1\n")
		require.Contains(t, s, "keyrings with keys missing: 5\n")
		require.Contains(t, s, "retired versions skipped: 1\n")
		require.Contains(t, s, "keys missing "+noBackup.String()+" (key v1): shredded after the dump? data-lifecycle replay-ledger re-runs the purge")
		require.Contains(t, s, "tombstone "+shredded.String())
		require.Contains(t, s, "refused "+foreignKey.String()+" v1")
		for _, o := range []owner.ID{plain, rotated, created, rotatedLater, retired, newestLost} {
			for ver, w := range e.keyRows(t, o) {
				require.NotContains(t, s, base64.StdEncoding.EncodeToString(w), "no wrapped key in the summary (%s v%d)", o, ver)
				require.NotContains(t, s, hex.EncodeToString(w), "no wrapped key in the summary (%s v%d)", o, ver)
			}
		}
	})

	t.Run("a second run changes nothing", func(t *testing.T) {
		state := e.snapshot(t)
		again := e.restore(t)
		require.Equal(t, state, e.snapshot(t))
		require.False(t, again.Changed())
		require.Zero(t, again.Restored)
		require.Equal(t, 9, again.Present)
		require.Zero(t, again.KeyringsCreated)
		require.Zero(t, again.KeyringsAdvanced)
		require.Len(t, again.Refused, 4)
		require.Len(t, again.Missing, 5)
		var out bytes.Buffer
		require.NoError(t, again.WriteSummary(&out))
		require.Contains(t, out.String(), "nothing changed")
	})
}

// TestRestoreKeyringsVerdict: refused backups always fail the command, keys missing only with
// -strict, and an empty bucket (a wrong URL) shreds nobody and says so.
func TestRestoreKeyringsVerdict(t *testing.T) {
	cases := []struct {
		name            string
		rep             vault.RestoreReport
		lenient, strict bool // whether each fails
	}{
		{"clean", vault.RestoreReport{Owners: 1, Restored: 1}, false, false},
		{"refused", vault.RestoreReport{Refused: []vault.RefusedKey{{Owner: owner.New(), Version: 1, Reason: "x"}}}, true, true},
		{"missing", vault.RestoreReport{Missing: []vault.MissingKeys{{Owner: owner.New(), Count: 1, Versions: []uint32{1}}}}, false, true},
		{"missing not checked", vault.RestoreReport{MissingUnchecked: true}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.lenient, c.rep.Err(false) != nil)
			require.Equal(t, c.strict, c.rep.Err(true) != nil)
		})
	}

	t.Run("empty bucket", func(t *testing.T) {
		e := newRestoreEnv(t)
		o := owner.New()
		seal(t, e.vault, o, "x")
		_, err := e.backups.DeleteOwner(context.Background(), o)
		require.NoError(t, err)
		e.exec(t, `DELETE FROM tenant_keys`)
		rep := e.restore(t)
		require.Zero(t, rep.Owners)
		require.Equal(t, []vault.MissingKeys{{Owner: o, Count: 1, Versions: []uint32{1}}}, rep.Missing)
		_, _, shredded, ok := e.keyring(t, o)
		require.True(t, ok)
		require.False(t, shredded)
		var out bytes.Buffer
		require.NoError(t, rep.WriteSummary(&out))
		require.Contains(t, out.String(), "is FORGE_KEYRING_BACKUP_URL the region's keyring bucket?")
	})
}

// TestRestoreKeyringsWithoutBypassRLS: the production migration role may not bypass row-level
// security. Each owner's transaction sets the owner, so the keys are still restored; the check
// for missing keys, which reads every tenant's keyring, says it could not run instead of
// reporting the nothing RLS would show it.
func TestRestoreKeyringsWithoutBypassRLS(t *testing.T) {
	e := newRestoreEnv(t)
	o := owner.New()
	s := seal(t, e.vault, o, "restored without BYPASSRLS")
	e.exec(t, `DELETE FROM tenant_keys`)
	e.pg.ExecAdmin(t, fmt.Sprintf(`ALTER ROLE %q NOBYPASSRLS`, e.pg.Names.MigrationRole))

	rep := e.restore(t)
	require.Equal(t, 1, rep.Restored)
	require.True(t, rep.MissingUnchecked)
	require.Empty(t, rep.Missing)
	require.NoError(t, rep.Err(false))
	require.Error(t, rep.Err(true))
	got, err := decrypt(e.freshVault(t), s)
	require.NoError(t, err)
	require.Equal(t, s.plain, got)
}
