package grpcapi_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/grpcapi"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// newCanary returns a secret-looking value with characters every encoding treats differently.
func newCanary(label string) string {
	return "cnry-" + label + "-" + strings.ReplaceAll(uuid.NewString(), "-", "") + `/+?&="<é>`
}

// canaryForms lists every form in which a canary could leak: raw, base64 (standard and URL,
// padded or not, at each of the three alignments it can take inside a longer encoding), hex,
// URL-escaped and JSON-escaped.
func canaryForms(c string) map[string]string {
	forms := map[string]string{
		"raw":          c,
		"hex":          hex.EncodeToString([]byte(c)),
		"HEX":          strings.ToUpper(hex.EncodeToString([]byte(c))),
		"query-escape": url.QueryEscape(c),
		"path-escape":  url.PathEscape(c),
	}
	js, _ := json.Marshal(c)
	forms["json"] = strings.Trim(string(js), `"`)
	for shift := 0; shift < 3; shift++ {
		in := strings.Repeat("x", shift) + c
		for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding, "rawstd": base64.RawStdEncoding, "rawurl": base64.RawURLEncoding} {
			s := enc.EncodeToString([]byte(in))
			// Drop the characters that depend on what comes before or after the canary.
			if shift > 0 {
				s = s[4:]
			}
			s = strings.TrimRight(s, "=")
			s = s[:len(s)-4]
			forms[fmt.Sprintf("base64-%s-%d", name, shift)] = s
		}
	}
	return forms
}

// panicking wraps the real server with test-only panics: a handler that panics with a secret
// value in the panic (a string and an error), after the real work ran. plant registers a
// value only the handler saw (a generated data key) as a canary.
type panicking struct {
	*grpcapi.Server
	plant func(label string, value []byte)
}

func (p panicking) GenerateDataKey(ctx context.Context, req *vaultv1.GenerateDataKeyRequest) (*vaultv1.GenerateDataKeyResponse, error) {
	resp, err := p.Server.GenerateDataKey(ctx, req)
	if err == nil && req.GetBindings()[0].GetField() == "panic" {
		key := resp.GetKeys()[0].GetPlaintext()
		p.plant("data-key-panic", key)
		panic("generated data key " + base64.StdEncoding.EncodeToString(key) + " " + hex.EncodeToString(key))
	}
	return resp, err
}

func (p panicking) DecryptDataKey(ctx context.Context, req *vaultv1.DecryptDataKeyRequest) (*vaultv1.DecryptDataKeyResponse, error) {
	resp, err := p.Server.DecryptDataKey(ctx, req)
	if err == nil && req.GetItems()[0].GetBinding().GetField() == "panic" {
		panic(fmt.Errorf("opened data key %x", resp.GetPlaintexts()[0]))
	}
	return resp, err
}

func (p panicking) PutSecret(ctx context.Context, req *vaultv1.PutSecretRequest) (*vaultv1.PutSecretResponse, error) {
	if req.GetName() == "PANIC" {
		panic("put failed for value " + req.GetValue())
	}
	return p.Server.PutSecret(ctx, req)
}

func (p panicking) ResolveSecret(ctx context.Context, req *vaultv1.ResolveSecretRequest) (*vaultv1.ResolveSecretResponse, error) {
	resp, err := p.Server.ResolveSecret(ctx, req)
	if req.GetName() == "PANIC_RESOLVE" && err == nil {
		panic(errors.New("resolved " + resp.GetValue()))
	}
	return resp, err
}

func (p panicking) Decrypt(ctx context.Context, req *vaultv1.DecryptRequest) (*vaultv1.DecryptResponse, error) {
	resp, err := p.Server.Decrypt(ctx, req)
	if err == nil && req.GetItems()[0].GetBinding().GetField() == "panic" {
		_ = resp.GetPlaintexts()[len(resp.GetPlaintexts())] // a runtime error panic
	}
	return resp, err
}

// panicStore panics inside a transaction, while a secret is being written.
type panicStore struct{ vault.Store }

func (s panicStore) Tx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx vault.StoreTx) error) error {
	return s.Store.Tx(ctx, o, func(ctx context.Context, tx vault.StoreTx) error { return fn(ctx, panicTx{tx}) })
}

type panicTx struct{ vault.StoreTx }

func (t panicTx) InsertSecret(ctx context.Context, s vault.StoredSecret) error {
	if s.Name == "PANIC_IN_STORE" {
		if err := t.StoreTx.InsertSecret(ctx, s); err != nil {
			return err
		}
		panic(fmt.Sprintf("store broke after writing %x", s.Ciphertext))
	}
	return t.StoreTx.InsertSecret(ctx, s)
}

// TestCanaryNeverLeaks plants canary secret values and plaintexts, drives every RPC with them
// (successful, malformed, oversize, refused, failing and panicking calls), and searches every
// log line, every span and every error returned for any form of any canary.
func TestCanaryNeverLeaks(t *testing.T) {
	var (
		plantedMu sync.Mutex
		planted   = map[string]string{}
	)
	e := newEnv(t,
		func(o *envOptions) { o.wrapStore = func(s vault.Store) vault.Store { return panicStore{s} } },
		func(o *envOptions) {
			o.wrapServer = func(s *grpcapi.Server) register {
				p := panicking{Server: s, plant: func(label string, value []byte) {
					plantedMu.Lock()
					defer plantedMu.Unlock()
					planted[label] = string(value)
				}}
				return func(r grpc.ServiceRegistrar) {
					vaultv1.RegisterSecretServiceServer(r, p)
					vaultv1.RegisterAppRegistryServiceServer(r, p)
					vaultv1.RegisterSecretResolverServiceServer(r, p)
					vaultv1.RegisterCryptoServiceServer(r, p)
					vaultv1.RegisterKeyServiceServer(r, p)
				}
			}
		})
	ctx := context.Background()
	alice, mallory := owner.New(), owner.New()
	app := e.registerApp(t, alice)
	canaries := map[string]string{}
	canary := func(label string) string {
		c := newCanary(label)
		canaries[label] = c
		return c
	}
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	sc, res, keys := e.secrets(t), e.resolver(t, workload.SandboxOrigin), e.keys(t, workload.Gateway)
	apps := e.crypto(t, workload.Apps)
	put := func(o owner.ID, appID, name, value string) error {
		_, err := sc.PutSecret(as(o), &vaultv1.PutSecretRequest{AppId: appID, Name: name, Value: value,
			UpstreamHost: "api.example.com", Injection: headerInjection()})
		return err
	}

	// Secrets: stored, rotated, resolved, listed, exported, deleted.
	require.NoError(t, put(alice, app, "KEY", canary("put")))
	require.NoError(t, put(alice, app, "PANIC_RESOLVE", "placeholder")) // later resolved with a panic
	_, err := sc.RotateSecret(as(alice), &vaultv1.RotateSecretRequest{AppId: app, Name: "PANIC_RESOLVE", Value: canary("rotate")})
	require.NoError(t, err)
	got, err := res.ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	require.NoError(t, err)
	require.Equal(t, canaries["put"], got.GetValue())
	_, err = res.ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "PANIC_RESOLVE"})
	keep(err)
	require.Error(t, err, "the forced panic")
	_, err = sc.ListSecrets(as(alice), &vaultv1.ListSecretsRequest{AppId: app})
	require.NoError(t, err)
	stream, err := e.keys(t, workload.DataLifecycle).ExportSecretMetadata(ctx, &vaultv1.ExportSecretMetadataRequest{OwnerId: alice.String()})
	require.NoError(t, err)
	for {
		if _, err := stream.Recv(); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}

	// Refused and malformed secret calls carrying canaries.
	keep(put(alice, app, "PANIC", canary("panic-put")))                        // handler panics with the value
	keep(put(alice, app, "PANIC_IN_STORE", canary("panic-store")))             // store panics mid-transaction
	keep(put(alice, app, "", canary("no-name")))                               // invalid name
	keep(put(alice, app, "KEY", canary("duplicate")))                          // already exists
	keep(put(alice, uuid.NewString(), "KEY", canary("unknown-app")))           // unknown app
	keep(put(mallory, app, "KEY", canary("foreign-app")))                      // another tenant's app
	keep(put(alice, app, "BIG", canary("oversize")+strings.Repeat("x", 9000))) // oversize
	keep(put(alice, app, "CTRL", canary("control")+"\r\nX-Injected: 1"))       // control characters
	keep(put(alice, "not-a-uuid", "KEY", canary("bad-app-id")))                // malformed ID
	_, err = sc.RotateSecret(as(mallory), &vaultv1.RotateSecretRequest{AppId: app, Name: "KEY", Value: canary("foreign-rotate")})
	keep(err)
	_, err = sc.RotateSecret(as(alice), &vaultv1.RotateSecretRequest{AppId: app, Name: "KEY", Value: canary("oversize-rotate") + strings.Repeat("y", 9000)})
	keep(err)
	_, err = vaultv1.NewSecretServiceClient(e.conn(t, workload.SandboxOrigin)).PutSecret(as(alice), &vaultv1.PutSecretRequest{
		AppId: app, Name: "KEY2", Value: canary("wrong-caller"), UpstreamHost: "api.example.com", Injection: headerInjection()})
	keep(err)
	_, err = e.resolver(t, workload.Apps).ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: app, Name: "KEY"})
	keep(err)

	// Content encryption: sealed, opened, rewrapped, refused, panicking.
	enc, err := apps.Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT, Items: []*vaultv1.EncryptItem{
		{Binding: bind("doc", "body"), Plaintext: []byte(canary("plaintext"))},
		{Binding: bind("doc", "panic"), Plaintext: []byte(canary("plaintext-panic"))},
	}})
	require.NoError(t, err)
	_, err = apps.Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: enc.GetCiphertexts()[0]}}})
	require.NoError(t, err)
	_, err = apps.Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "panic"), Ciphertext: enc.GetCiphertexts()[1]}}})
	keep(err)
	require.Error(t, err, "the forced runtime panic")
	_, err = apps.Decrypt(as(mallory), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: enc.GetCiphertexts()[0]}}})
	keep(err)
	_, err = apps.Decrypt(as(alice), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: []byte(canary("garbage-ciphertext"))}}})
	keep(err)
	_, err = e.crypto(t, workload.DataLifecycle).Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.EncryptItem{{Binding: bind("doc", "body"), Plaintext: []byte(canary("wrong-purpose"))}}})
	keep(err)
	_, err = apps.Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.EncryptItem{{Binding: bind("", "body"), Plaintext: []byte(canary("no-object"))}}})
	keep(err)
	_, err = apps.Encrypt(as(alice), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Items: []*vaultv1.EncryptItem{{Binding: bind("doc", "body"), Plaintext: []byte(canary("oversize-plaintext") + strings.Repeat("z", 4<<20))}}})
	keep(err)

	// Data keys (envelope encryption): the keys are the canaries, generated by the vault.
	gen, err := apps.GenerateDataKey(as(alice), &vaultv1.GenerateDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Bindings: []*vaultv1.Binding{bind("file", "content"), bind("file", "panic")}})
	require.NoError(t, err)
	for i, k := range gen.GetKeys() {
		canaries[fmt.Sprintf("data-key-%d", i)] = string(k.GetPlaintext())
	}
	opened, err := apps.DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_SERVE,
		Items: []*vaultv1.WrappedDataKey{{Binding: bind("file", "content"), Wrapped: gen.GetKeys()[0].GetWrapped()}}})
	require.NoError(t, err)
	require.Equal(t, gen.GetKeys()[0].GetPlaintext(), opened.GetPlaintexts()[0])
	_, err = apps.DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_SERVE,
		Items: []*vaultv1.WrappedDataKey{{Binding: bind("file", "panic"), Wrapped: gen.GetKeys()[1].GetWrapped()}}})
	keep(err)
	require.Error(t, err, "the forced panic after opening the key")
	_, err = apps.GenerateDataKey(as(alice), &vaultv1.GenerateDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT,
		Bindings: []*vaultv1.Binding{bind("file", "panic")}})
	keep(err)
	require.Error(t, err, "the forced panic after generating the key")
	_, err = apps.DecryptDataKey(as(mallory), &vaultv1.DecryptDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_SERVE,
		Items: []*vaultv1.WrappedDataKey{{Binding: bind("file", "content"), Wrapped: gen.GetKeys()[0].GetWrapped()}}})
	keep(err)
	_, err = apps.DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_SERVE,
		Items: []*vaultv1.WrappedDataKey{{Binding: bind("file", "moved"), Wrapped: gen.GetKeys()[0].GetWrapped()}}})
	keep(err)
	_, err = e.crypto(t, workload.DataLifecycle).DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_SERVE,
		Items: []*vaultv1.WrappedDataKey{{Binding: bind("file", "content"), Wrapped: gen.GetKeys()[0].GetWrapped()}}})
	keep(err)

	// Key management, audit, registry, the lifecycle's system methods.
	_, err = keys.RotateKey(as(alice), &vaultv1.RotateKeyRequest{})
	require.NoError(t, err)
	_, err = apps.Rewrap(as(alice), &vaultv1.RewrapRequest{Purpose: vaultv1.Purpose_PURPOSE_REWRAP,
		Items: []*vaultv1.DecryptItem{{Binding: bind("doc", "body"), Ciphertext: enc.GetCiphertexts()[0]}}})
	require.NoError(t, err)
	_, err = e.vault.RewrapSecrets(ctx, 10)
	require.NoError(t, err)
	_, err = keys.RetireKeyVersions(as(alice), &vaultv1.RetireKeyVersionsRequest{MinDecryptVersion: 2})
	require.NoError(t, err)
	_, err = keys.ListAudit(as(alice), &vaultv1.ListAuditRequest{PageSize: 100})
	require.NoError(t, err)
	_, err = keys.ListAudit(as(alice), &vaultv1.ListAuditRequest{PageToken: canary("page-token")})
	keep(err)
	_, err = e.registry(t).UnregisterApp(as(alice), &vaultv1.UnregisterAppRequest{AppId: app})
	require.NoError(t, err)

	// A failing dependency: the audit table refuses the runtime role, so uses fail.
	other := e.registerApp(t, alice)
	require.NoError(t, put(alice, other, "KEY", canary("before-failure")))
	e.pg.ExecAdmin(t, `REVOKE INSERT ON `+e.pg.Names.Schema+`.audit_log FROM `+e.pg.Names.RuntimeRole)
	_, err = res.ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: other, Name: "KEY"})
	keep(err)
	keep(put(alice, other, "FAILS", canary("audit-down")))
	e.pg.ExecAdmin(t, `GRANT INSERT ON `+e.pg.Names.Schema+`.audit_log TO `+e.pg.Names.RuntimeRole)

	_, err = e.keys(t, workload.DataLifecycle).ShredTenant(ctx, &vaultv1.ShredTenantRequest{OwnerId: alice.String()})
	require.NoError(t, err)
	_, err = res.ResolveSecret(as(alice), &vaultv1.ResolveSecretRequest{AppId: other, Name: "KEY"})
	keep(err)
	_, err = apps.DecryptDataKey(as(alice), &vaultv1.DecryptDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_SERVE,
		Items: []*vaultv1.WrappedDataKey{{Binding: bind("file", "content"), Wrapped: gen.GetKeys()[0].GetWrapped()}}})
	keep(err)
	plantedMu.Lock()
	require.Contains(t, planted, "data-key-panic", "the panicking handler ran")
	for label, c := range planted {
		canaries[label] = c
	}
	plantedMu.Unlock()

	// What the test itself saw: the captured logs, every span, every error.
	var haystack strings.Builder
	haystack.WriteString(e.logs.String())
	for _, s := range e.spans.GetSpans() {
		fmt.Fprintf(&haystack, "\nspan %s %s %s", s.Name, s.Status.Code, s.Status.Description)
		for _, a := range s.Attributes {
			fmt.Fprintf(&haystack, " %s=%s", a.Key, a.Value.Emit())
		}
		for _, ev := range s.Events {
			fmt.Fprintf(&haystack, " event %s", ev.Name)
			for _, a := range ev.Attributes {
				fmt.Fprintf(&haystack, " %s=%s", a.Key, a.Value.Emit())
			}
		}
	}
	require.NotEmpty(t, e.spans.GetSpans(), "spans were captured")
	require.Contains(t, haystack.String(), `"grpc call"`, "access log lines were captured")
	require.Contains(t, haystack.String(), `"internal error"`, "the masked errors were logged")
	for _, err := range errs {
		st := status.Convert(err)
		fmt.Fprintf(&haystack, "\nerror %s %s %s", st.Code(), st.Message(), err.Error())
		for _, d := range st.Proto().GetDetails() {
			haystack.WriteString(" " + prototext.Format(d) + " " + protojson.Format(d))
		}
	}
	require.GreaterOrEqual(t, len(errs), 20)
	text := haystack.String()
	for label, c := range canaries {
		for form, s := range canaryForms(c) {
			require.NotContains(t, text, s, "canary %q leaked as %s", label, form)
		}
	}
	// Sanity: the search would find one.
	require.Contains(t, text+canaryForms(canaries["put"])["base64-std-1"], canaryForms(canaries["put"])["base64-std-1"])
	require.Zero(t, e.count(t, "secrets", alice))
}
