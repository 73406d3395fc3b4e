package grpcapi_test

import (
	"context"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"
)

func TestRewrapAndRetire(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "KEY", "secret-v1")
	old := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte("hello")}).GetCiphertexts()[0]
	keys := e.keys(t, workload.Gateway)

	_, err := keys.RotateKey(as(alice), &vaultv1.RotateKeyRequest{})
	require.NoError(t, err)
	versions, err := e.backup.Versions(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, []uint32{1, 2}, versions, "every key version is backed up when it is created")

	// Rewrap moves a service's ciphertext without revealing it.
	rw, err := e.crypto(t, workload.Apps).Rewrap(as(alice), &vaultv1.RewrapRequest{Purpose: vaultv1.Purpose_PURPOSE_REWRAP,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: old}}})
	require.NoError(t, err)
	require.EqualValues(t, 2, rw.GetKeyVersion())
	moved := rw.GetCiphertexts()[0]
	require.EqualValues(t, 2, moved[4])
	again, err := e.crypto(t, workload.Apps).Rewrap(as(alice), &vaultv1.RewrapRequest{Purpose: vaultv1.Purpose_PURPOSE_REWRAP,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: moved}}})
	require.NoError(t, err)
	require.Equal(t, moved, again.GetCiphertexts()[0], "already current: unchanged")
	_, err = e.crypto(t, workload.Apps).Rewrap(as(alice), &vaultv1.RewrapRequest{Purpose: vaultv1.Purpose_PURPOSE_REWRAP,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "other"), Ciphertext: old}}})
	requireCode(t, err, codes.InvalidArgument)

	// The vault's own secret still uses v1: retiring v1 is refused until the rewrap job ran.
	before := e.snapshot(t)
	_, err = keys.RetireKeyVersions(as(alice), &vaultv1.RetireKeyVersionsRequest{MinDecryptVersion: 2})
	requireCode(t, err, codes.FailedPrecondition)
	require.Equal(t, before, e.snapshot(t))

	n, err := e.vault.RewrapSecrets(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = e.vault.RewrapSecrets(ctx, 10)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to move")
	var ver int
	require.NoError(t, e.pg.Migrator.QueryRow(ctx, `SELECT key_version FROM secrets WHERE owner_id = $1`, alice).Scan(&ver))
	require.Equal(t, 2, ver)

	ret, err := keys.RetireKeyVersions(as(alice), &vaultv1.RetireKeyVersionsRequest{MinDecryptVersion: 2})
	require.NoError(t, err)
	require.EqualValues(t, 2, ret.GetMinDecryptVersion())
	require.Equal(t, 1, e.count(t, "tenant_keys", alice), "retired versions are destroyed")
	versions, err = e.backup.Versions(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, []uint32{2}, versions, "and their backups too")

	_, err = e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: old}}})
	requireCode(t, err, codes.FailedPrecondition)
	dec, err := e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: moved}}})
	require.NoError(t, err)
	require.Equal(t, "hello", string(dec.GetPlaintexts()[0]))
	got, err := e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	require.NoError(t, err)
	require.Equal(t, "secret-v1", got.GetValue())
}

// TestRetiredVersionRefusedWithStaleCache proves the per-use policy check: a process whose
// cache still holds a retired version refuses to use it.
func TestRetiredVersionRefusedWithStaleCache(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	old := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte("hello")}).GetCiphertexts()[0]
	_, err := e.keys(t, workload.Gateway).RotateKey(as(alice), &vaultv1.RotateKeyRequest{})
	require.NoError(t, err)
	// Warm the cache with both versions, then retire v1 behind this process's back (as
	// another replica would).
	_, err = e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: old}}})
	require.NoError(t, err)
	_, err = e.pg.Migrator.Exec(ctx, `UPDATE keyrings SET min_decrypt_version = 2 WHERE owner_id = $1`, alice)
	require.NoError(t, err)
	before := e.count(t, "audit_log", alice)
	_, err = e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: old}}})
	requireCode(t, err, codes.FailedPrecondition)
	require.Equal(t, before, e.count(t, "audit_log", alice))
}

func TestShred(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice, bob := owner.New(), owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "KEY", "alice-secret")
	ct := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte("alice's prompt")}).GetCiphertexts()[0]
	_, err := e.keys(t, workload.Gateway).RotateKey(as(alice), &vaultv1.RotateKeyRequest{})
	require.NoError(t, err)
	bobApp := e.registerApp(t, bob)
	e.putSecret(t, bob, bobApp, "KEY", "bob-secret")

	// A database backup taken before the shred (the key table is excluded from dumps).
	var backupCT []byte
	require.NoError(t, e.pg.Migrator.QueryRow(ctx, `SELECT ciphertext FROM secrets WHERE owner_id = $1`, alice).Scan(&backupCT))

	for _, caller := range []string{workload.Gateway, workload.Apps, workload.Tenant, workload.SandboxOrigin} {
		_, err := e.keys(t, caller).ShredTenant(ctx, &vaultv1.ShredTenantRequest{OwnerId: alice.String()})
		requireCode(t, err, codes.PermissionDenied)
	}
	_, err = e.keys(t, workload.DataLifecycle).ShredTenant(as(alice), &vaultv1.ShredTenantRequest{OwnerId: alice.String()})
	requireCode(t, err, codes.PermissionDenied) // a system method refuses an asserted owner

	shred := func() *vaultv1.ShredTenantResponse {
		resp, err := e.keys(t, workload.DataLifecycle).ShredTenant(ctx, &vaultv1.ShredTenantRequest{OwnerId: alice.String()})
		require.NoError(t, err)
		return resp
	}
	first := shred()
	require.Equal(t, []uint32{1, 2}, first.GetKeyVersionsDestroyed())
	require.EqualValues(t, 1, first.GetSecretsDeleted())
	require.Positive(t, first.GetRowsDeleted())

	require.Zero(t, e.count(t, "tenant_keys", alice), "the key rows are gone")
	versions, err := e.backup.Versions(ctx, alice)
	require.NoError(t, err)
	require.Empty(t, versions, "the keyring backups are gone")
	for _, table := range []string{"secrets", "registered_apps", "audit_log"} {
		require.Zero(t, e.count(t, table, alice), table)
	}
	require.Equal(t, 1, e.count(t, "keyrings", alice), "the tombstone stays")

	// Every use now answers FailedPrecondition, and nothing creates a fresh key.
	cc := e.crypto(t, workload.Apps)
	_, err = cc.Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: ct}}})
	st := requireCode(t, err, codes.FailedPrecondition)
	require.Contains(t, st.Message(), "destroyed")
	_, err = e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	requireCode(t, err, codes.FailedPrecondition)
	_, err = cc.Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.EncryptItem{{Binding: bind("doc", "body"), Plaintext: []byte("new")}}})
	requireCode(t, err, codes.FailedPrecondition)
	_, err = e.keys(t, workload.Gateway).RotateKey(as(alice), &vaultv1.RotateKeyRequest{})
	requireCode(t, err, codes.FailedPrecondition)
	_, err = e.registry(t).RegisterApp(as(alice), &vaultv1.RegisterAppRequest{AppId: app})
	requireCode(t, err, codes.FailedPrecondition)
	require.Zero(t, e.count(t, "tenant_keys", alice), "no fresh key for a purged tenant")

	// The backed-up ciphertext is unreadable: restoring it gives nothing.
	_, err = e.pg.Migrator.Exec(ctx, `INSERT INTO registered_apps VALUES ($1, $2, now())`, alice, app)
	require.NoError(t, err)
	_, err = e.pg.Migrator.Exec(ctx, `INSERT INTO secrets (owner_id, app_id, name, ciphertext, key_version, upstream_host,
		injection_kind, header_name, created_at, rotated_at) VALUES ($1, $2, 'KEY', $3, 2, 'api.example.com', 1, 'X', now(), now())`,
		alice, app, backupCT)
	require.NoError(t, err)
	_, err = e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	requireCode(t, err, codes.FailedPrecondition)

	again := shred()
	require.Equal(t, first.GetKeyVersionsDestroyed(), again.GetKeyVersionsDestroyed(), "idempotent")
	require.Zero(t, e.count(t, "secrets", alice))

	// Bob is untouched.
	got, err := e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(bob), &vaultv1.ResolveSecretRequest{AppId: bobApp, Name: "KEY"})
	require.NoError(t, err)
	require.Equal(t, "bob-secret", got.GetValue())
	bobVersions, err := e.backup.Versions(ctx, bob)
	require.NoError(t, err)
	require.Equal(t, []uint32{1}, bobVersions)

	// A tenant that never had a key gets a tombstone too.
	carol := owner.New()
	resp, err := e.keys(t, workload.DataLifecycle).ShredTenant(ctx, &vaultv1.ShredTenantRequest{OwnerId: carol.String()})
	require.NoError(t, err)
	require.Empty(t, resp.GetKeyVersionsDestroyed())
	_, err = cc.Encrypt(as(carol), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.EncryptItem{{Binding: bind("doc", "body"), Plaintext: []byte("new")}}})
	requireCode(t, err, codes.FailedPrecondition)
}

// runtimeTx runs fn as the runtime role, in an owner transaction set the way pkg/database does.
func runtimeTx(t *testing.T, e *env, o owner.ID, fn func(tx pgx.Tx) error) error {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), e.pg.RuntimeURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), "SET search_path = "+e.pg.Names.Schema)
	require.NoError(t, err)
	return pgx.BeginFunc(context.Background(), conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), `SELECT set_config('app.owner_id', $1, true)`, o.String()); err != nil {
			return err
		}
		return fn(tx)
	})
}

func TestAuditIsAppendOnlyForTheRuntimeRole(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte("x")})
	require.Positive(t, e.count(t, "audit_log", alice))

	cases := []struct {
		name string
		sql  string
	}{
		{"update audit", `UPDATE audit_log SET subject = 'forged' WHERE owner_id = $1`},
		{"delete audit", `DELETE FROM audit_log WHERE owner_id = $1`},
		{"delete tombstone or keyring", `DELETE FROM keyrings WHERE owner_id = $1`},
		{"update wrapped key", `UPDATE tenant_keys SET kek_id = 'x' WHERE owner_id = $1`},
		{"truncate audit", `TRUNCATE audit_log`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := runtimeTx(t, e, alice, func(tx pgx.Tx) error {
				if c.name == "truncate audit" {
					_, err := tx.Exec(ctx, c.sql)
					return err
				}
				_, err := tx.Exec(ctx, c.sql, alice)
				return err
			})
			require.Error(t, err)
		})
	}
	require.Positive(t, e.count(t, "audit_log", alice))

	// The purge function deletes nothing of a live tenant, nor of a tenant other than the
	// transaction's.
	var purged int
	require.NoError(t, runtimeTx(t, e, alice, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT audit_purge($1, 100)`, alice).Scan(&purged)
	}))
	require.Zero(t, purged)
	require.Positive(t, e.count(t, "audit_log", alice))

	// A tombstone is final even for an UPDATE the runtime role may run.
	_, err := e.keys(t, workload.DataLifecycle).ShredTenant(ctx, &vaultv1.ShredTenantRequest{OwnerId: alice.String()})
	require.NoError(t, err)
	err = runtimeTx(t, e, alice, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE keyrings SET shredded_at = NULL, current_version = 1, min_decrypt_version = 1 WHERE owner_id = $1`, alice)
		return err
	})
	require.Error(t, err)
	err = runtimeTx(t, e, alice, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenant_keys VALUES ($1, 9, 'k', '\x00', now())`, alice)
		return err
	})
	require.Error(t, err, "no key is ever added to a shredded tenant")

	// Once shredded, only the tenant's own transaction may purge its entries.
	bob := owner.New()
	e.encrypt(t, bob, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte("x")})
	_, err = e.pg.Migrator.Exec(ctx, `UPDATE keyrings SET shredded_at = now() WHERE owner_id = $1`, bob)
	require.NoError(t, err)
	require.NoError(t, runtimeTx(t, e, alice, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT audit_purge($1, 100)`, bob).Scan(&purged)
	}))
	require.Zero(t, purged)
	require.Positive(t, e.count(t, "audit_log", bob))
}

// TestAuditFailureFailsTheUse: if the audit entry cannot be written, no plaintext leaves.
func TestAuditFailureFailsTheUse(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "KEY", "value")
	ct := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte("x")}).GetCiphertexts()[0]

	e.pg.ExecAdmin(t, `REVOKE INSERT ON `+e.pg.Names.Schema+`.audit_log FROM `+e.pg.Names.RuntimeRole)
	dec, err := e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: ct}}})
	requireCode(t, err, codes.Internal)
	require.Nil(t, dec)
	res, err := e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	requireCode(t, err, codes.Internal)
	require.Nil(t, res)
	gen, err := e.crypto(t, workload.Apps).GenerateDataKey(as(alice), &vaultv1.GenerateDataKeyRequest{
		Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT, Bindings: []*vaultv1.Binding{bind("doc", "file")}})
	requireCode(t, err, codes.Internal)
	require.Nil(t, gen)
	e.pg.ExecAdmin(t, `GRANT INSERT ON `+e.pg.Names.Schema+`.audit_log TO `+e.pg.Names.RuntimeRole)
	wrapped := e.generateKeys(t, alice, bind("doc", "file")).GetKeys()[0].GetWrapped()
	e.pg.ExecAdmin(t, `REVOKE INSERT ON `+e.pg.Names.Schema+`.audit_log FROM `+e.pg.Names.RuntimeRole)
	key, err := e.decryptKeys(alice, wrappedKey(bind("doc", "file"), wrapped))
	requireCode(t, err, codes.Internal)
	require.Nil(t, key)
}

func TestExportSecretMetadataAndAuditPaging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "A", "value-a")
	e.putSecret(t, alice, app, "B", "value-b")

	_, err := e.keys(t, workload.Gateway).ExportSecretMetadata(ctx, &vaultv1.ExportSecretMetadataRequest{OwnerId: alice.String()})
	if err == nil {
		stream, _ := e.keys(t, workload.Gateway).ExportSecretMetadata(ctx, &vaultv1.ExportSecretMetadataRequest{OwnerId: alice.String()})
		_, err = stream.Recv()
	}
	requireCode(t, err, codes.PermissionDenied)

	stream, err := e.keys(t, workload.DataLifecycle).ExportSecretMetadata(ctx, &vaultv1.ExportSecretMetadataRequest{OwnerId: alice.String()})
	require.NoError(t, err)
	var names []string
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		require.NotContains(t, m.String(), "value-")
		names = append(names, m.GetSecret().GetName())
	}
	require.Equal(t, []string{"A", "B"}, names)

	// Audit pages: key.create, 2 puts, export = 4 entries, pages of 3.
	keys := e.keys(t, workload.Gateway)
	page, err := keys.ListAudit(as(alice), &vaultv1.ListAuditRequest{PageSize: 3})
	require.NoError(t, err)
	require.Len(t, page.GetEntries(), 3)
	require.Equal(t, "secret.export_metadata", page.GetEntries()[0].GetAction())
	require.NotEmpty(t, page.GetNextPageToken())
	next, err := keys.ListAudit(as(alice), &vaultv1.ListAuditRequest{PageSize: 3, PageToken: page.GetNextPageToken()})
	require.NoError(t, err)
	require.Len(t, next.GetEntries(), 1)
	require.Equal(t, "key.create", next.GetEntries()[0].GetAction())
	require.Empty(t, next.GetNextPageToken())

	// Another tenant sees none of it.
	empty, err := keys.ListAudit(as(owner.New()), &vaultv1.ListAuditRequest{PageToken: page.GetNextPageToken()})
	require.NoError(t, err)
	require.Empty(t, empty.GetEntries())
}

// TestShredElsewhereStopsCachedKeys: another replica shreds the tenant while this process
// still caches its keys; the per-use policy check refuses every use at once.
func TestShredElsewhereStopsCachedKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "KEY", "value")
	ct := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte("x")}).GetCiphertexts()[0]
	decrypt := func() error {
		_, err := e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
			Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: ct}}})
		return err
	}
	require.NoError(t, decrypt()) // the keys are cached now

	// What another replica's shred commits (its first transaction).
	_, err := e.pg.Migrator.Exec(ctx, `UPDATE keyrings SET shredded_at = now() WHERE owner_id = $1`, alice)
	require.NoError(t, err)
	_, err = e.pg.Migrator.Exec(ctx, `DELETE FROM tenant_keys WHERE owner_id = $1`, alice)
	require.NoError(t, err)

	requireCode(t, decrypt(), codes.FailedPrecondition)
	_, err = e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	requireCode(t, err, codes.FailedPrecondition)
	_, err = e.crypto(t, workload.Apps).Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.EncryptItem{{Binding: bind("doc", "body"), Plaintext: []byte("y")}}})
	requireCode(t, err, codes.FailedPrecondition)
}
