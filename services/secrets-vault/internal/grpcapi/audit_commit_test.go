package grpcapi_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// commitRecorder remembers, per audited action and purpose, whether the use asked the store for
// an asynchronous commit.
type commitRecorder struct {
	vault.Store
	mu   sync.Mutex
	seen map[string]bool
}

func (r *commitRecorder) Tx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx vault.StoreTx) error) error {
	return r.Store.Tx(ctx, o, func(ctx context.Context, tx vault.StoreTx) error { return fn(ctx, recordingTx{tx, r}) })
}

type recordingTx struct {
	vault.StoreTx
	r *commitRecorder
}

func (t recordingTx) RecordUse(ctx context.Context, e vault.AuditEntry, check vault.UseCheck) (bool, error) {
	t.r.mu.Lock()
	t.r.seen[e.Action+" "+string(e.Purpose)] = check.AsyncCommit
	t.r.mu.Unlock()
	return t.StoreTx.RecordUse(ctx, e, check)
}

// TestOnlyLowSensitivityReadsCommitAsync drives every audited use and checks which ones may
// commit without waiting for the WAL flush: decrypting small fields for APP_CONTENT and opening
// content to serve an app. Secret resolution (even for SERVE), prompts, export, rewrap,
// encryption, key issue and contents opened for APP_CONTENT stay durable.
func TestOnlyLowSensitivityReadsCommitAsync(t *testing.T) {
	rec := &commitRecorder{seen: map[string]bool{}}
	e := newEnv(t, func(o *envOptions) {
		o.wrapStore = func(s vault.Store) vault.Store { rec.Store = s; return rec }
	})
	alice := owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "KEY", "value")
	_, err := e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	require.NoError(t, err)
	apps, lifecycle := e.crypto(t, workload.Apps), e.crypto(t, workload.DataLifecycle)
	b := bind("app/1", "name")
	for _, c := range []struct {
		cc vaultv1.CryptoServiceClient
		p  vaultv1.Purpose
	}{
		{apps, vaultv1.Purpose_PURPOSE_APP_CONTENT}, {apps, vaultv1.Purpose_PURPOSE_SERVE},
		{apps, vaultv1.Purpose_PURPOSE_PROMPT_OWNER_VIEW}, {apps, vaultv1.Purpose_PURPOSE_PROMPT_COLLABORATOR_VIEW},
		{apps, vaultv1.Purpose_PURPOSE_PROMPT_BUILD}, {apps, vaultv1.Purpose_PURPOSE_EXPORT}, {lifecycle, vaultv1.Purpose_PURPOSE_EXPORT},
	} {
		enc, err := c.cc.Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: c.p, Items: []*vaultv1.EncryptItem{{Binding: b, Plaintext: []byte("x")}}})
		require.NoError(t, err)
		_, err = c.cc.Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: c.p,
			Items: []*vaultv1.DecryptItem{{Binding: b, Ciphertext: enc.GetCiphertexts()[0]}}})
		require.NoError(t, err)
		gen, err := c.cc.GenerateDataKey(as(alice), &vaultv1.GenerateDataKeyRequest{Purpose: c.p, Bindings: []*vaultv1.Binding{b}})
		require.NoError(t, err)
		_, err = c.cc.DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: c.p,
			Items: []*vaultv1.WrappedDataKey{{Binding: b, Wrapped: gen.GetKeys()[0].GetWrapped()}}})
		require.NoError(t, err)
	}
	old := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: b, Plaintext: []byte("x")}).GetCiphertexts()[0]
	_, err = e.keys(t, workload.Gateway).RotateKey(as(alice), &vaultv1.RotateKeyRequest{})
	require.NoError(t, err)
	_, err = apps.Rewrap(as(alice), &vaultv1.RewrapRequest{Purpose: vaultv1.Purpose_PURPOSE_REWRAP,
		Items: []*vaultv1.DecryptItem{{Binding: b, Ciphertext: old}}})
	require.NoError(t, err)
	_, err = e.vault.RewrapSecrets(context.Background(), 10)
	require.NoError(t, err)
	_, err = e.secrets(t).RotateSecret(as(alice), &vaultv1.RotateSecretRequest{AppId: app, Name: "KEY", Value: "new"})
	require.NoError(t, err)

	async := map[string]bool{
		"crypto.decrypt app_content":    true,
		"crypto.decrypt serve":          true,
		"crypto.decrypt_data_key serve": true,
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Contains(t, rec.seen, "secret.resolve serve")
	require.Contains(t, rec.seen, "crypto.decrypt_data_key app_content")
	require.Contains(t, rec.seen, "crypto.rewrap rewrap")
	require.Len(t, rec.seen, 6*4+5, "every purpose with every crypto action, and the secret and rewrap uses")
	for use, got := range rec.seen {
		require.Equal(t, async[use], got, use)
	}
}
