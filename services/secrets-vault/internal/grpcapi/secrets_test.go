package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forgeapps/backbone/pkg/database"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"
)

func TestPostureHolds(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, database.CheckPosture(context.Background(), e.pg.DB, posture()))
}

func TestSecretLifecycle(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	app := e.registerApp(t, alice)
	sc := e.secrets(t)

	put, err := sc.PutSecret(as(alice), &vaultv1.PutSecretRequest{
		AppId: app, Name: "OPENAI_KEY", Value: "sk-first", UpstreamHost: "API.OpenAI.com", Injection: headerInjection(),
	})
	require.NoError(t, err)
	require.Equal(t, "api.openai.com", put.GetSecret().GetUpstreamHost(), "the host is stored canonical")

	_, err = sc.PutSecret(as(alice), &vaultv1.PutSecretRequest{
		AppId: app, Name: "OPENAI_KEY", Value: "sk-again", UpstreamHost: "api.openai.com", Injection: headerInjection(),
	})
	requireCode(t, err, codes.AlreadyExists)

	list, err := sc.ListSecrets(as(alice), &vaultv1.ListSecretsRequest{AppId: app})
	require.NoError(t, err)
	require.Len(t, list.GetSecrets(), 1)
	require.NotContains(t, list.String(), "sk-first", "a list never carries a value")

	res := e.resolver(t, workload.SandboxOrigin)
	got, err := res.ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "OPENAI_KEY"})
	require.NoError(t, err)
	require.Equal(t, "sk-first", got.GetValue())
	require.Equal(t, "api.openai.com", got.GetUpstreamHost())
	require.Equal(t, "Bearer ", got.GetInjection().GetPrefix())

	_, err = sc.RotateSecret(as(alice), &vaultv1.RotateSecretRequest{AppId: app, Name: "OPENAI_KEY", Value: "sk-second"})
	require.NoError(t, err)
	got, err = res.ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "OPENAI_KEY"})
	require.NoError(t, err)
	require.Equal(t, "sk-second", got.GetValue())

	// The stored value is ciphertext.
	var ct []byte
	require.NoError(t, e.pg.Migrator.QueryRow(context.Background(), `SELECT ciphertext FROM secrets WHERE owner_id = $1`, alice).Scan(&ct))
	require.NotContains(t, string(ct), "sk-second")

	_, err = sc.DeleteSecret(as(alice), &vaultv1.DeleteSecretRequest{AppId: app, Name: "OPENAI_KEY"})
	require.NoError(t, err)
	_, err = res.ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "OPENAI_KEY"})
	requireCode(t, err, codes.NotFound)

	audit, err := e.keys(t, workload.Gateway).ListAudit(as(alice), &vaultv1.ListAuditRequest{})
	require.NoError(t, err)
	var actions []string
	for _, en := range audit.GetEntries() {
		actions = append(actions, en.GetAction())
		require.NotContains(t, en.String(), "sk-")
	}
	require.Equal(t, []string{"secret.delete", "secret.resolve", "secret.rotate", "secret.resolve", "secret.put", "key.create"}, actions)
	require.Equal(t, "spiffe://forge.internal/sandbox-origin", audit.GetEntries()[1].GetWorkload())
	require.Equal(t, vaultv1.Purpose_PURPOSE_SERVE, audit.GetEntries()[1].GetPurpose())
	require.Equal(t, "OPENAI_KEY", audit.GetEntries()[1].GetSubject())
}

// TestPutSecretCallers: the edge (the owner's own call) and apps (a key the owner pasted into a
// prompt) may store a secret, each asserting the owner and reaching only that owner's apps;
// apps may do nothing else with secrets, and no other workload may store one.
func TestPutSecretCallers(t *testing.T) {
	e := newEnv(t)
	alice, mallory := owner.New(), owner.New()
	app := e.registerApp(t, alice)
	e.registerApp(t, mallory)
	put := func(caller string, ctx context.Context, appID, name string) error {
		_, err := vaultv1.NewSecretServiceClient(e.conn(t, caller)).PutSecret(ctx, &vaultv1.PutSecretRequest{
			AppId: appID, Name: name, Value: "v-" + name, UpstreamHost: "api.example.com", Injection: headerInjection()})
		return err
	}
	require.NoError(t, put(workload.Gateway, as(alice), app, "FROM_GATEWAY"))
	require.NoError(t, put(workload.Apps, as(alice), app, "FROM_APPS"))

	before := e.snapshot(t)
	for _, caller := range []string{workload.SandboxOrigin, workload.DataLifecycle, workload.Tenant, workload.Builder, workload.Billing} {
		t.Run("refused "+caller, func(t *testing.T) {
			requireCode(t, put(caller, as(alice), app, "REFUSED"), codes.PermissionDenied)
		})
	}
	t.Run("apps without an owner", func(t *testing.T) {
		requireCode(t, put(workload.Apps, context.Background(), app, "NO_OWNER"), codes.Unauthenticated)
	})
	t.Run("apps for another tenant's app", func(t *testing.T) {
		requireCode(t, put(workload.Apps, as(mallory), app, "FOREIGN"), codes.NotFound)
	})
	t.Run("apps may not manage secrets otherwise", func(t *testing.T) {
		sc := vaultv1.NewSecretServiceClient(e.conn(t, workload.Apps))
		_, err := sc.ListSecrets(as(alice), &vaultv1.ListSecretsRequest{AppId: app})
		requireCode(t, err, codes.PermissionDenied)
		_, err = sc.RotateSecret(as(alice), &vaultv1.RotateSecretRequest{AppId: app, Name: "FROM_APPS", Value: "x"})
		requireCode(t, err, codes.PermissionDenied)
		_, err = sc.DeleteSecret(as(alice), &vaultv1.DeleteSecretRequest{AppId: app, Name: "FROM_APPS"})
		requireCode(t, err, codes.PermissionDenied)
	})
	require.Equal(t, before, e.snapshot(t), "refused calls changed nothing")

	list, err := e.secrets(t).ListSecrets(as(alice), &vaultv1.ListSecretsRequest{AppId: app})
	require.NoError(t, err)
	var names []string
	for _, s := range list.GetSecrets() {
		names = append(names, s.GetName())
	}
	require.Equal(t, []string{"FROM_APPS", "FROM_GATEWAY"}, names)
	got, err := e.resolver(t, workload.SandboxOrigin).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "FROM_APPS"})
	require.NoError(t, err)
	require.Equal(t, "v-FROM_APPS", got.GetValue())
}

func TestAppRegistry(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "A", "one")
	e.putSecret(t, alice, app, "B", "two")

	// Registering twice is harmless.
	_, err := e.registry(t).RegisterApp(as(alice), &vaultv1.RegisterAppRequest{AppId: app})
	require.NoError(t, err)

	resp, err := e.registry(t).UnregisterApp(as(alice), &vaultv1.UnregisterAppRequest{AppId: app})
	require.NoError(t, err)
	require.EqualValues(t, 2, resp.GetSecretsDeleted())
	require.Zero(t, e.count(t, "secrets", alice))

	_, err = e.secrets(t).ListSecrets(as(alice), &vaultv1.ListSecretsRequest{AppId: app})
	requireCode(t, err, codes.NotFound)
	_, err = e.secrets(t).PutSecret(as(alice), &vaultv1.PutSecretRequest{
		AppId: app, Name: "A", Value: "x", UpstreamHost: "api.example.com", Injection: headerInjection()})
	requireCode(t, err, codes.NotFound)

	resp, err = e.registry(t).UnregisterApp(as(alice), &vaultv1.UnregisterAppRequest{AppId: app})
	require.NoError(t, err, "idempotent")
	require.Zero(t, resp.GetSecretsDeleted())

	// Only apps may call the registry.
	for _, caller := range []string{workload.Gateway, workload.SandboxOrigin, workload.DataLifecycle, workload.Tenant, workload.Builder} {
		_, err := vaultv1.NewAppRegistryServiceClient(e.conn(t, caller)).RegisterApp(as(alice), &vaultv1.RegisterAppRequest{AppId: uuid.NewString()})
		requireCode(t, err, codes.PermissionDenied)
	}
}

// TestCrossTenantOwnerRPCs calls every owner-facing RPC as a second tenant with the first
// tenant's IDs: each answers exactly what a nonexistent ID answers and changes nothing.
func TestCrossTenantOwnerRPCs(t *testing.T) {
	e := newEnv(t)
	alice, mallory := owner.New(), owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "KEY", "alice-secret")
	e.registerApp(t, mallory) // mallory is a real tenant with her own app and key
	e.putSecret(t, mallory, e.registerApp(t, mallory), "KEY", "mallory-secret")
	ct := e.encrypt(t, alice, &vaultv1.EncryptItem{Binding: bind("app/"+app, "name"), Plaintext: []byte("alice's app")}).GetCiphertexts()[0]
	missingApp := uuid.NewString()

	sc, res := e.secrets(t), e.resolver(t, workload.SandboxOrigin)
	cases := []struct {
		name string
		call func(appID string) error
	}{
		{"PutSecret", func(a string) error {
			_, err := sc.PutSecret(as(mallory), &vaultv1.PutSecretRequest{AppId: a, Name: "KEY", Value: "x", UpstreamHost: "api.example.com", Injection: headerInjection()})
			return err
		}},
		{"PutSecret new name", func(a string) error {
			_, err := sc.PutSecret(as(mallory), &vaultv1.PutSecretRequest{AppId: a, Name: "OTHER", Value: "x", UpstreamHost: "api.example.com", Injection: headerInjection()})
			return err
		}},
		{"ListSecrets", func(a string) error {
			_, err := sc.ListSecrets(as(mallory), &vaultv1.ListSecretsRequest{AppId: a})
			return err
		}},
		{"RotateSecret", func(a string) error {
			_, err := sc.RotateSecret(as(mallory), &vaultv1.RotateSecretRequest{AppId: a, Name: "KEY", Value: "y"})
			return err
		}},
		{"DeleteSecret", func(a string) error {
			_, err := sc.DeleteSecret(as(mallory), &vaultv1.DeleteSecretRequest{AppId: a, Name: "KEY"})
			return err
		}},
		{"ResolveSecret", func(a string) error {
			_, err := res.ResolveSecret(as(mallory), &vaultv1.ResolveSecretRequest{AppId: a, Name: "KEY"})
			return err
		}},
		{"UnregisterApp", func(a string) error {
			resp, err := e.registry(t).UnregisterApp(as(mallory), &vaultv1.UnregisterAppRequest{AppId: a})
			if err == nil && resp.GetSecretsDeleted() != 0 {
				return status.Error(codes.Unknown, "deleted something")
			}
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t)
			errForeign := c.call(app)
			errMissing := c.call(missingApp)
			require.Equal(t, status.Code(errMissing), status.Code(errForeign))
			require.Equal(t, status.Convert(errMissing).Message(), status.Convert(errForeign).Message())
			if c.name != "UnregisterApp" {
				requireCode(t, errForeign, codes.NotFound)
			}
			require.Equal(t, before, e.snapshot(t), "a refused request changes nothing")
		})
	}

	t.Run("Decrypt", func(t *testing.T) {
		before := e.snapshot(t)
		_, errForeign := e.crypto(t, workload.Apps).Decrypt(as(mallory), &vaultv1.DecryptRequest{
			Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
			Items:   []*vaultv1.DecryptItem{{Binding: bind("app/"+app, "name"), Ciphertext: ct}},
		})
		own := e.encrypt(t, mallory, &vaultv1.EncryptItem{Binding: bind("app/x", "name"), Plaintext: []byte("m")}).GetCiphertexts()[0]
		before = e.snapshot(t)
		_, errOther := e.crypto(t, workload.Apps).Decrypt(as(mallory), &vaultv1.DecryptRequest{
			Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
			Items:   []*vaultv1.DecryptItem{{Binding: bind("app/"+app, "name"), Ciphertext: own}},
		})
		st := requireCode(t, errForeign, codes.InvalidArgument)
		require.Equal(t, status.Convert(errOther).Message(), st.Message(), "another tenant's ciphertext looks like any that does not open")
		require.Equal(t, before, e.snapshot(t))
	})

	t.Run("PutSecret by a tenant with no state at all", func(t *testing.T) {
		eve := owner.New()
		before := e.snapshot(t)
		_, err := sc.PutSecret(as(eve), &vaultv1.PutSecretRequest{AppId: app, Name: "KEY", Value: "x", UpstreamHost: "api.example.com", Injection: headerInjection()})
		requireCode(t, err, codes.NotFound)
		require.Equal(t, before, e.snapshot(t), "not even a first key is created")
	})

	// Alice's data is intact.
	got, err := res.ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	require.NoError(t, err)
	require.Equal(t, "alice-secret", got.GetValue())
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	app := e.registerApp(t, alice)
	e.putSecret(t, alice, app, "KEY", "v")
	sc := e.secrets(t)
	put := func(mut func(r *vaultv1.PutSecretRequest)) error {
		r := &vaultv1.PutSecretRequest{AppId: app, Name: "NEW", Value: "v", UpstreamHost: "api.example.com", Injection: headerInjection()}
		mut(r)
		_, err := sc.PutSecret(as(alice), r)
		return err
	}
	cases := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"empty name", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.Name = "" }) }, codes.InvalidArgument},
		{"name with space", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.Name = "A B" }) }, codes.InvalidArgument},
		{"long name", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.Name = "A" + strings.Repeat("b", 64) }) }, codes.InvalidArgument},
		{"empty value", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.Value = "" }) }, codes.InvalidArgument},
		{"oversize value", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.Value = strings.Repeat("x", 8193) }) }, codes.InvalidArgument},
		{"control character in value", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.Value = "a\r\nX-Evil: 1" }) }, codes.InvalidArgument},
		{"bad app id", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.AppId = "not-a-uuid" }) }, codes.InvalidArgument},
		{"unknown app", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.AppId = uuid.NewString() }) }, codes.NotFound},
		{"no host", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.UpstreamHost = "" }) }, codes.InvalidArgument},
		{"ip host", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.UpstreamHost = "169.254.169.254" }) }, codes.InvalidArgument},
		{"host with scheme", func() error {
			return put(func(r *vaultv1.PutSecretRequest) { r.UpstreamHost = "https://api.example.com" })
		}, codes.InvalidArgument},
		{"no injection", func() error { return put(func(r *vaultv1.PutSecretRequest) { r.Injection = nil }) }, codes.InvalidArgument},
		{"header without name", func() error {
			return put(func(r *vaultv1.PutSecretRequest) {
				r.Injection = &vaultv1.Injection{Kind: vaultv1.Injection_KIND_HEADER}
			})
		}, codes.InvalidArgument},
		{"cookie header", func() error {
			return put(func(r *vaultv1.PutSecretRequest) {
				r.Injection = &vaultv1.Injection{Kind: vaultv1.Injection_KIND_HEADER, HeaderName: "Cookie"}
			})
		}, codes.InvalidArgument},
		{"query without param", func() error {
			return put(func(r *vaultv1.PutSecretRequest) {
				r.Injection = &vaultv1.Injection{Kind: vaultv1.Injection_KIND_QUERY}
			})
		}, codes.InvalidArgument},
		{"rotate empty value", func() error {
			_, err := sc.RotateSecret(as(alice), &vaultv1.RotateSecretRequest{AppId: app, Name: "KEY"})
			return err
		}, codes.InvalidArgument},
		{"rotate unknown name", func() error {
			_, err := sc.RotateSecret(as(alice), &vaultv1.RotateSecretRequest{AppId: app, Name: "NOPE", Value: "x"})
			return err
		}, codes.NotFound},
		{"delete unknown name", func() error {
			_, err := sc.DeleteSecret(as(alice), &vaultv1.DeleteSecretRequest{AppId: app, Name: "NOPE"})
			return err
		}, codes.NotFound},
		{"list bad app id", func() error {
			_, err := sc.ListSecrets(as(alice), &vaultv1.ListSecretsRequest{AppId: ""})
			return err
		}, codes.InvalidArgument},
		{"audit bad page token", func() error {
			_, err := e.keys(t, workload.Gateway).ListAudit(as(alice), &vaultv1.ListAuditRequest{PageToken: "garbage!"})
			return err
		}, codes.InvalidArgument},
		{"audit page size", func() error {
			_, err := e.keys(t, workload.Gateway).ListAudit(as(alice), &vaultv1.ListAuditRequest{PageSize: 1000})
			return err
		}, codes.InvalidArgument},
		{"retire version zero", func() error {
			_, err := e.keys(t, workload.Gateway).RetireKeyVersions(as(alice), &vaultv1.RetireKeyVersionsRequest{})
			return err
		}, codes.InvalidArgument},
		{"retire future version", func() error {
			_, err := e.keys(t, workload.Gateway).RetireKeyVersions(as(alice), &vaultv1.RetireKeyVersionsRequest{MinDecryptVersion: 9})
			return err
		}, codes.InvalidArgument},
		{"shred bad owner", func() error {
			_, err := e.keys(t, workload.DataLifecycle).ShredTenant(context.Background(), &vaultv1.ShredTenantRequest{OwnerId: "x"})
			return err
		}, codes.InvalidArgument},
		{"encrypt no items", func() error {
			_, err := e.crypto(t, workload.Apps).Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT})
			return err
		}, codes.InvalidArgument},
		{"encrypt no purpose", func() error {
			_, err := e.crypto(t, workload.Apps).Encrypt(as(alice), &vaultv1.EncryptRequest{Items: []*vaultv1.EncryptItem{{Binding: bind("o", "f")}}})
			return err
		}, codes.InvalidArgument},
		{"encrypt reserved object", func() error {
			_, err := e.crypto(t, workload.Apps).Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
				Items: []*vaultv1.EncryptItem{{Binding: bind("vault:secret/"+app+"/KEY", "value")}}})
			return err
		}, codes.InvalidArgument},
		{"encrypt no binding", func() error {
			_, err := e.crypto(t, workload.Apps).Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
				Items: []*vaultv1.EncryptItem{{Plaintext: []byte("x")}}})
			return err
		}, codes.InvalidArgument},
		{"decrypt garbage", func() error {
			_, err := e.crypto(t, workload.Apps).Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
				Items: []*vaultv1.DecryptItem{{Binding: bind("o", "f"), Ciphertext: []byte("garbage")}}})
			return err
		}, codes.InvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t)
			requireCode(t, c.call(), c.code)
			require.Equal(t, before, e.snapshot(t))
		})
	}
}

func TestSecretsPerAppAreBounded(t *testing.T) {
	e := newEnv(t)
	alice := owner.New()
	app := e.registerApp(t, alice)
	// Fill the app to the limit directly (as the migration role) to keep the test fast; the
	// vault must still count them.
	e.putSecret(t, alice, app, "S0", "v")
	_, err := e.pg.Migrator.Exec(context.Background(), `INSERT INTO secrets (owner_id, app_id, name, ciphertext, key_version,
		upstream_host, injection_kind, header_name, created_at, rotated_at)
		SELECT owner_id, app_id, 'S' || g, ciphertext, key_version, upstream_host, injection_kind, header_name, now(), now()
		FROM secrets, generate_series(1, 99) g WHERE owner_id = $1`, alice)
	require.NoError(t, err)
	before := e.snapshot(t)
	_, err = e.secrets(t).PutSecret(as(alice), &vaultv1.PutSecretRequest{AppId: app, Name: "ONE_MORE", Value: "v",
		UpstreamHost: "api.example.com", Injection: headerInjection()})
	requireCode(t, err, codes.ResourceExhausted)
	require.Equal(t, before, e.snapshot(t))
}
