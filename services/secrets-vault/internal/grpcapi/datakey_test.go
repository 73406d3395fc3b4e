package grpcapi_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// generateKeys asks for one data key per binding, as apps.
func (e *env) generateKeys(tb testing.TB, o owner.ID, bindings ...*vaultv1.Binding) *vaultv1.GenerateDataKeyResponse {
	tb.Helper()
	resp, err := e.crypto(tb, workload.Apps).GenerateDataKey(as(o), &vaultv1.GenerateDataKeyRequest{
		Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT, Bindings: bindings})
	require.NoError(tb, err)
	require.Len(tb, resp.GetKeys(), len(bindings))
	return resp
}

// decryptKeys opens wrapped keys as apps.
func (e *env) decryptKeys(o owner.ID, items ...*vaultv1.WrappedDataKey) (*vaultv1.DecryptDataKeyResponse, error) {
	return e.crypto(e.root, workload.Apps).DecryptDataKey(as(o), &vaultv1.DecryptDataKeyRequest{
		Purpose: vaultv1.Purpose_PURPOSE_SERVE, Items: items})
}

func wrappedKey(b *vaultv1.Binding, wrapped []byte) *vaultv1.WrappedDataKey {
	return &vaultv1.WrappedDataKey{Binding: b, Wrapped: wrapped}
}

// TestDataKeys: fresh random keys, wrapped like any ciphertext for their binding; only the
// same owner, object and field opens one; every use is audited.
func TestDataKeys(t *testing.T) {
	e := newEnv(t)
	alice, bob := owner.New(), owner.New()
	fileA, fileB := bind("version/app-1/1/aaaa", "content"), bind("version/app-1/1/bbbb", "content")
	gen := e.generateKeys(t, alice, fileA, fileB)
	require.EqualValues(t, 1, gen.GetKeyVersion())
	keyA, keyB := gen.GetKeys()[0], gen.GetKeys()[1]
	for _, k := range gen.GetKeys() {
		require.Len(t, k.GetPlaintext(), vault.DataKeySize)
		require.Len(t, k.GetWrapped(), vault.DataKeySize+vault.Overhead)
		require.Equal(t, vault.FormatV1, k.GetWrapped()[0], "the format of every ciphertext")
		require.EqualValues(t, 1, k.GetWrapped()[4], "sealed under the current key version")
		require.False(t, bytes.Contains(k.GetWrapped(), k.GetPlaintext()))
		require.NotEqual(t, make([]byte, vault.DataKeySize), k.GetPlaintext())
	}
	require.NotEqual(t, keyA.GetPlaintext(), keyB.GetPlaintext(), "one fresh key per binding")
	again := e.generateKeys(t, alice, fileA)
	require.NotEqual(t, keyA.GetPlaintext(), again.GetKeys()[0].GetPlaintext(), "never the same key twice")

	got, err := e.decryptKeys(alice, wrappedKey(fileA, keyA.GetWrapped()), wrappedKey(fileB, keyB.GetWrapped()))
	require.NoError(t, err)
	require.Equal(t, [][]byte{keyA.GetPlaintext(), keyB.GetPlaintext()}, got.GetPlaintexts())

	audit, err := e.keys(t, workload.Gateway).ListAudit(as(alice), &vaultv1.ListAuditRequest{PageSize: 10})
	require.NoError(t, err)
	var actions []string
	for _, en := range audit.GetEntries() {
		actions = append(actions, en.GetAction())
	}
	require.Equal(t, []string{"crypto.decrypt_data_key", "crypto.generate_data_key", "crypto.generate_data_key", "key.create"}, actions)
	require.Equal(t, "spiffe://forge.internal/apps", audit.GetEntries()[0].GetWorkload())
	require.Equal(t, vaultv1.Purpose_PURPOSE_SERVE, audit.GetEntries()[0].GetPurpose())
	require.EqualValues(t, 2, audit.GetEntries()[0].GetItems())
	require.Equal(t, "key v1", audit.GetEntries()[0].GetSubject())
	require.Equal(t, vaultv1.Purpose_PURPOSE_APP_CONTENT, audit.GetEntries()[2].GetPurpose())
	require.EqualValues(t, 2, audit.GetEntries()[2].GetItems())

	// Moved, swapped or tampered wrapped keys do not open, and nothing is recorded.
	e.generateKeys(t, bob, fileA) // bob has a key of his own
	content := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte("not a key")}).GetCiphertexts()[0]
	flipped := bytes.Clone(keyA.GetWrapped())
	flipped[len(flipped)-1] ^= 1
	otherVersion := bytes.Clone(keyA.GetWrapped())
	otherVersion[4] = 2
	cases := []struct {
		name  string
		owner owner.ID
		item  *vaultv1.WrappedDataKey
	}{
		{"another object's key", alice, wrappedKey(fileA, keyB.GetWrapped())},
		{"another object", alice, wrappedKey(bind("version/app-1/2/aaaa", "content"), keyA.GetWrapped())},
		{"another field", alice, wrappedKey(bind("version/app-1/1/aaaa", "meta"), keyA.GetWrapped())},
		{"another tenant", bob, wrappedKey(fileA, keyA.GetWrapped())},
		{"tampered", alice, wrappedKey(fileA, flipped)},
		{"tampered header", alice, wrappedKey(fileA, otherVersion)},
		{"truncated", alice, wrappedKey(fileA, keyA.GetWrapped()[:40])},
		{"content, not a key", alice, wrappedKey(bind("doc", "body"), content)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t)
			resp, err := e.decryptKeys(c.owner, c.item)
			requireCode(t, err, codes.InvalidArgument)
			require.Nil(t, resp)
			require.Equal(t, before, e.snapshot(t))
		})
	}
	t.Run("one bad item fails the batch", func(t *testing.T) {
		resp, err := e.decryptKeys(alice, wrappedKey(fileA, keyA.GetWrapped()), wrappedKey(fileB, keyA.GetWrapped()))
		st := requireCode(t, err, codes.InvalidArgument)
		require.Contains(t, st.Message(), "items[1]")
		require.Nil(t, resp)
	})
}

// TestDataKeysFollowTheTenantKey: wrapped keys live and die with the tenant key that wraps them.
// Rewrap moves them to a new version, retiring the old version makes the old wrapping
// unreadable, and after a shred (here or by another replica while this one caches the keys)
// no wrapped key opens and no new key is issued.
func TestDataKeysFollowTheTenantKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	file := bind("reference/r-1", "content")
	old := e.generateKeys(t, alice, file).GetKeys()[0]
	_, err := e.keys(t, workload.Gateway).RotateKey(as(alice), &vaultv1.RotateKeyRequest{})
	require.NoError(t, err)
	fresh := e.generateKeys(t, alice, file)
	require.EqualValues(t, 2, fresh.GetKeyVersion())

	rw, err := e.crypto(t, workload.Apps).Rewrap(as(alice), &vaultv1.RewrapRequest{Purpose: vaultv1.Purpose_PURPOSE_REWRAP,
		Items: []*vaultv1.DecryptItem{{Binding: file, Ciphertext: old.GetWrapped()}}})
	require.NoError(t, err)
	moved := rw.GetCiphertexts()[0]
	require.EqualValues(t, 2, moved[4])
	got, err := e.decryptKeys(alice, wrappedKey(file, moved))
	require.NoError(t, err)
	require.Equal(t, old.GetPlaintext(), got.GetPlaintexts()[0], "the same key, wrapped under the new version")

	_, err = e.keys(t, workload.Gateway).RetireKeyVersions(as(alice), &vaultv1.RetireKeyVersionsRequest{MinDecryptVersion: 2})
	require.NoError(t, err)
	_, err = e.decryptKeys(alice, wrappedKey(file, old.GetWrapped()))
	st := requireCode(t, err, codes.FailedPrecondition)
	require.Contains(t, st.Message(), "retired")
	_, err = e.decryptKeys(alice, wrappedKey(file, moved))
	require.NoError(t, err)

	shredChecks := func(t *testing.T, o owner.ID, wrapped []byte) {
		t.Helper()
		before := e.snapshot(t)
		resp, err := e.decryptKeys(o, wrappedKey(file, wrapped))
		st := requireCode(t, err, codes.FailedPrecondition)
		require.Contains(t, st.Message(), "destroyed")
		require.Nil(t, resp)
		gen, err := e.crypto(t, workload.Apps).GenerateDataKey(as(o), &vaultv1.GenerateDataKeyRequest{
			Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT, Bindings: []*vaultv1.Binding{file}})
		requireCode(t, err, codes.FailedPrecondition)
		require.Nil(t, gen)
		require.Equal(t, before, e.snapshot(t))
		require.Zero(t, e.count(t, "tenant_keys", o), "no fresh key for a shredded tenant")
	}
	t.Run("shred", func(t *testing.T) {
		_, err := e.keys(t, workload.DataLifecycle).ShredTenant(ctx, &vaultv1.ShredTenantRequest{OwnerId: alice.String()})
		require.NoError(t, err)
		shredChecks(t, alice, moved)
	})
	t.Run("shred by another replica under a warm cache", func(t *testing.T) {
		bob := owner.New()
		k := e.generateKeys(t, bob, file).GetKeys()[0]
		_, err := e.decryptKeys(bob, wrappedKey(file, k.GetWrapped()))
		require.NoError(t, err) // the keys are cached now
		_, err = e.pg.Migrator.Exec(ctx, `UPDATE keyrings SET shredded_at = now() WHERE owner_id = $1`, bob)
		require.NoError(t, err)
		_, err = e.pg.Migrator.Exec(ctx, `DELETE FROM tenant_keys WHERE owner_id = $1`, bob)
		require.NoError(t, err)
		shredChecks(t, bob, k.GetWrapped())
	})
}

// TestDataKeyBadInput: malformed requests are refused before any key is touched or created.
func TestDataKeyBadInput(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	cc := e.crypto(t, workload.Apps)
	gen := func(p vaultv1.Purpose, bindings ...*vaultv1.Binding) error {
		_, err := cc.GenerateDataKey(as(alice), &vaultv1.GenerateDataKeyRequest{Purpose: p, Bindings: bindings})
		return err
	}
	dec := func(p vaultv1.Purpose, items ...*vaultv1.WrappedDataKey) error {
		_, err := cc.DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: p, Items: items})
		return err
	}
	many := make([]*vaultv1.Binding, 501)
	for i := range many {
		many[i] = bind(fmt.Sprintf("o/%d", i), "content")
	}
	content := vaultv1.Purpose_PURPOSE_APP_CONTENT
	wrapped := bytes.Repeat([]byte{1}, vault.DataKeySize+vault.Overhead)
	cases := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"no bindings", func() error { return gen(content) }, codes.InvalidArgument},
		{"too many bindings", func() error { return gen(content, many...) }, codes.InvalidArgument},
		{"no purpose", func() error { return gen(vaultv1.Purpose_PURPOSE_UNSPECIFIED, bind("o", "f")) }, codes.InvalidArgument},
		{"undeclarable purpose", func() error { return gen(vaultv1.Purpose_PURPOSE_SECRET_MANAGEMENT, bind("o", "f")) }, codes.PermissionDenied},
		{"empty object", func() error { return gen(content, bind("", "f")) }, codes.InvalidArgument},
		{"long object", func() error { return gen(content, bind(strings.Repeat("o", 257), "f")) }, codes.InvalidArgument},
		{"empty field", func() error { return gen(content, bind("o", "")) }, codes.InvalidArgument},
		{"the vault's own object", func() error { return gen(content, bind("vault:secret/x/KEY", "value")) }, codes.InvalidArgument},
		{"decrypt: no items", func() error { return dec(content) }, codes.InvalidArgument},
		{"decrypt: empty key", func() error { return dec(content, wrappedKey(bind("o", "f"), nil)) }, codes.InvalidArgument},
		{"decrypt: oversize key", func() error { return dec(content, wrappedKey(bind("o", "f"), make([]byte, 257))) }, codes.InvalidArgument},
		{"decrypt: no binding", func() error { return dec(content, wrappedKey(nil, wrapped)) }, codes.InvalidArgument},
		{"decrypt: the vault's own object", func() error { return dec(content, wrappedKey(bind("vault:secret/x/KEY", "value"), wrapped)) }, codes.InvalidArgument},
		{"decrypt: a tenant without keys", func() error { return dec(content, wrappedKey(bind("o", "f"), wrapped)) }, codes.InvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t)
			requireCode(t, c.call(), c.code)
			require.Equal(t, before, e.snapshot(t), "nothing changed, no key was created")
		})
	}
}
