package grpcapi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"
)

func TestResolveOnlyForSandboxOriginAndTheApp(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	app, otherApp := e.registerApp(t, alice), e.registerApp(t, alice)
	e.putSecret(t, alice, app, "KEY", "alice-app-one")
	e.putSecret(t, alice, otherApp, "OTHER", "alice-app-two")
	req := &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"}

	for _, caller := range []string{workload.Gateway, workload.Apps, workload.Tenant, workload.DataLifecycle, workload.Builder, workload.Billing, workload.SecretsVault} {
		t.Run("caller "+caller, func(t *testing.T) {
			_, err := e.resolver(t, caller).ResolveSecret(as(alice), req)
			requireCode(t, err, codes.PermissionDenied)
		})
	}
	t.Run("no owner", func(t *testing.T) {
		_, err := e.resolver(t, workload.SandboxOrigin).ResolveSecret(context.Background(), req)
		requireCode(t, err, codes.Unauthenticated)
	})
	t.Run("another app of the same owner", func(t *testing.T) {
		_, err := e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: otherApp, Name: "KEY"})
		requireCode(t, err, codes.NotFound)
		_, err = e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "OTHER"})
		requireCode(t, err, codes.NotFound)
	})
	t.Run("ciphertext moved to another app's row", func(t *testing.T) {
		_, err := e.pg.Migrator.Exec(context.Background(), `UPDATE secrets SET ciphertext = (SELECT ciphertext FROM secrets WHERE app_id = $1)
			WHERE app_id = $2`, app, otherApp)
		require.NoError(t, err)
		_, err = e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: otherApp, Name: "OTHER"})
		requireCode(t, err, codes.Internal)
	})
	t.Run("sandbox-origin for the app", func(t *testing.T) {
		got, err := e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), req)
		require.NoError(t, err)
		require.Equal(t, "alice-app-one", got.GetValue())
	})
}

func TestCryptoPurposesPerCaller(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	item := []*vaultv1.EncryptItem{{Binding: bind("app/1", "name"), Plaintext: []byte("x")}}
	cases := []struct {
		caller  string
		purpose vaultv1.Purpose
		code    codes.Code
	}{
		{workload.Apps, vaultv1.Purpose_PURPOSE_APP_CONTENT, codes.OK},
		{workload.Apps, vaultv1.Purpose_PURPOSE_PROMPT_BUILD, codes.OK},
		{workload.Apps, vaultv1.Purpose_PURPOSE_EXPORT, codes.OK},
		{workload.Apps, vaultv1.Purpose_PURPOSE_SECRET_MANAGEMENT, codes.PermissionDenied},
		{workload.DataLifecycle, vaultv1.Purpose_PURPOSE_EXPORT, codes.OK},
		{workload.DataLifecycle, vaultv1.Purpose_PURPOSE_APP_CONTENT, codes.PermissionDenied},
		{workload.DataLifecycle, vaultv1.Purpose_PURPOSE_PROMPT_OWNER_VIEW, codes.PermissionDenied},
		{workload.DataLifecycle, vaultv1.Purpose_PURPOSE_SERVE, codes.PermissionDenied},
		{workload.Gateway, vaultv1.Purpose_PURPOSE_APP_CONTENT, codes.PermissionDenied},
		{workload.SandboxOrigin, vaultv1.Purpose_PURPOSE_SERVE, codes.PermissionDenied},
		{workload.Tenant, vaultv1.Purpose_PURPOSE_APP_CONTENT, codes.PermissionDenied},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s", c.caller, c.purpose), func(t *testing.T) {
			cc := e.crypto(t, c.caller)
			before := e.snapshot(t)
			enc, err := cc.Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: c.purpose, Items: item})
			if c.code != codes.OK {
				requireCode(t, err, c.code)
				_, err = cc.Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: c.purpose,
					Items: []*vaultv1.DecryptItem{{Binding: bind("app/1", "name"), Ciphertext: []byte("0123456789012345678901234567890123")}}})
				requireCode(t, err, c.code)
				_, err = cc.Rewrap(as(alice), &vaultv1.RewrapRequest{Purpose: c.purpose,
					Items: []*vaultv1.DecryptItem{{Binding: bind("app/1", "name"), Ciphertext: []byte("0123456789012345678901234567890123")}}})
				requireCode(t, err, c.code)
				_, err = cc.GenerateDataKey(as(alice), &vaultv1.GenerateDataKeyRequest{Purpose: c.purpose,
					Bindings: []*vaultv1.Binding{bind("app/1", "file")}})
				requireCode(t, err, c.code)
				_, err = cc.DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: c.purpose,
					Items: []*vaultv1.WrappedDataKey{{Binding: bind("app/1", "file"), Wrapped: []byte("0123456789012345678901234567890123")}}})
				requireCode(t, err, c.code)
				require.Equal(t, before, e.snapshot(t))
				return
			}
			require.NoError(t, err)
			dec, err := cc.Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: c.purpose,
				Items: []*vaultv1.DecryptItem{{Binding: bind("app/1", "name"), Ciphertext: enc.GetCiphertexts()[0]}}})
			require.NoError(t, err)
			require.Equal(t, "x", string(dec.GetPlaintexts()[0]))
			gen, err := cc.GenerateDataKey(as(alice), &vaultv1.GenerateDataKeyRequest{Purpose: c.purpose,
				Bindings: []*vaultv1.Binding{bind("app/1", "file")}})
			require.NoError(t, err)
			key, err := cc.DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: c.purpose,
				Items: []*vaultv1.WrappedDataKey{{Binding: bind("app/1", "file"), Wrapped: gen.GetKeys()[0].GetWrapped()}}})
			require.NoError(t, err)
			require.Equal(t, gen.GetKeys()[0].GetPlaintext(), key.GetPlaintexts()[0])
		})
	}
	audit, err := e.keys(t, workload.Gateway).ListAudit(as(alice), &vaultv1.ListAuditRequest{PageSize: 100})
	require.NoError(t, err)
	seen := map[vaultv1.Purpose]bool{}
	for _, en := range audit.GetEntries() {
		seen[en.GetPurpose()] = true
	}
	require.True(t, seen[vaultv1.Purpose_PURPOSE_PROMPT_BUILD], "the declared purpose is audited")
}

// TestCiphertextSwapFails moves a ciphertext to another row, app, field and tenant: none opens.
func TestCiphertextSwapFails(t *testing.T) {
	e := newEnv(t)
	alice, bob := owner.New(), owner.New()
	appA, appB := uuid.NewString(), uuid.NewString()
	resp := e.encrypt(t, alice,
		&vaultv1.EncryptItem{Binding: bind("app/"+appA+"/prompt/1", "text"), Plaintext: []byte("prompt one")},
		&vaultv1.EncryptItem{Binding: bind("app/"+appA+"/prompt/2", "text"), Plaintext: []byte("prompt two")},
	)
	require.EqualValues(t, 1, resp.GetKeyVersion())
	ct := resp.GetCiphertexts()[0]
	e.encrypt(t, bob, &vaultv1.EncryptItem{Binding: bind("x", "y"), Plaintext: []byte("bob has a key too")})

	decrypt := func(o owner.ID, b *vaultv1.Binding, ct []byte) error {
		_, err := e.crypto(t, workload.Apps).Decrypt(as(o), &vaultv1.DecryptRequest{
			Purpose: vaultv1.Purpose_PURPOSE_PROMPT_OWNER_VIEW, Items: []*vaultv1.DecryptItem{{Binding: b, Ciphertext: ct}}})
		return err
	}
	require.NoError(t, decrypt(alice, bind("app/"+appA+"/prompt/1", "text"), ct))
	cases := []struct {
		name  string
		owner owner.ID
		b     *vaultv1.Binding
		ct    []byte
	}{
		{"other row", alice, bind("app/"+appA+"/prompt/2", "text"), ct},
		{"other app", alice, bind("app/"+appB+"/prompt/1", "text"), ct},
		{"other field", alice, bind("app/"+appA+"/prompt/1", "title"), ct},
		{"other tenant", bob, bind("app/"+appA+"/prompt/1", "text"), ct},
		{"row's own ciphertext swapped", alice, bind("app/"+appA+"/prompt/1", "text"), resp.GetCiphertexts()[1]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			requireCode(t, decrypt(c.owner, c.b, c.ct), codes.InvalidArgument)
		})
	}
	t.Run("one bad item fails the batch", func(t *testing.T) {
		_, err := e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{
			Purpose: vaultv1.Purpose_PURPOSE_PROMPT_OWNER_VIEW, Items: []*vaultv1.DecryptItem{
				{Binding: bind("app/"+appA+"/prompt/1", "text"), Ciphertext: ct},
				{Binding: bind("app/"+appA+"/prompt/1", "text"), Ciphertext: resp.GetCiphertexts()[1]},
			}})
		st := requireCode(t, err, codes.InvalidArgument)
		require.Contains(t, st.Message(), "items[1]")
	})
}

// TestRotationWithReadsInFlight rotates the key while readers decrypt ciphertexts of every
// version so far: no read fails, and each rotation encrypts under the new version.
func TestRotationWithReadsInFlight(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	type sealed struct {
		ct []byte
		pt string
	}
	var (
		mu   sync.Mutex
		all  []sealed
		stop = make(chan struct{})
		wg   sync.WaitGroup
		errs = make(chan error, 100)
	)
	add := func(i int) {
		pt := fmt.Sprintf("content %d", i)
		resp := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("doc", "body"), Plaintext: []byte(pt)})
		mu.Lock()
		all = append(all, sealed{resp.GetCiphertexts()[0], pt})
		mu.Unlock()
	}
	add(0)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				s := all[i%len(all)]
				mu.Unlock()
				resp, err := e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{
					Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT, Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: s.ct}}})
				if err != nil {
					errs <- err
					return
				}
				if string(resp.GetPlaintexts()[0]) != s.pt {
					errs <- fmt.Errorf("decrypted %q, want %q", resp.GetPlaintexts()[0], s.pt)
					return
				}
			}
		}()
	}
	for v := 2; v <= 5; v++ {
		rot, err := e.keys(t, workload.Gateway).RotateKey(as(alice), &vaultv1.RotateKeyRequest{})
		require.NoError(t, err)
		require.EqualValues(t, v, rot.GetKeyVersion())
		add(v)
		mu.Lock()
		last := all[len(all)-1].ct
		mu.Unlock()
		require.EqualValues(t, v, last[4], "encrypts under the new version from then on")
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 5, e.count(t, "tenant_keys", alice))
}
