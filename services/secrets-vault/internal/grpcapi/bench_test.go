package grpcapi_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"
)

// reportLatencies times each call and reports p50 and p99 besides ns/op.
func reportLatencies(b *testing.B, call func() error) {
	b.Helper()
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkResolveSecret measures the request-time resolve as sandbox-origin makes it: over
// mTLS gRPC through the full interceptor chain, with the tenant's key cached; each call reads
// the secret, opens it and commits its audit entry. The baseline is a health check on the same
// connection (transport and chain, no database).
func BenchmarkResolveSecret(b *testing.B) {
	e := newEnv(b)
	alice := owner.New()
	app := e.registerApp(b, alice)
	e.putSecret(b, alice, app, "OPENAI_KEY", "sk-live-0123456789abcdef0123456789abcdef")
	res := e.resolver(b, workload.SandboxOrigin)
	ctx := as(alice)
	req := &vaultv1.ResolveSecretRequest{AppId: app, Name: "OPENAI_KEY"}
	_, err := res.ResolveSecret(ctx, req) // warm the key cache and the prepared statements
	require.NoError(b, err)

	b.Run("baseline-health-check", func(b *testing.B) {
		h := healthpb.NewHealthClient(e.conn(b, workload.SandboxOrigin))
		reportLatencies(b, func() error {
			_, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{})
			return err
		})
	})
	b.Run("resolve", func(b *testing.B) {
		reportLatencies(b, func() error {
			_, err := res.ResolveSecret(ctx, req)
			return err
		})
	})
}

// BenchmarkDecryptRPC measures one Decrypt over mTLS gRPC (cached key, audited) of 1 small
// item and of 100 (an apps page of 50 names and 50 descriptions), for APP_CONTENT (its audit
// row commits without waiting for the WAL flush) and for a prompt purpose (a durable commit).
func BenchmarkDecryptRPC(b *testing.B) {
	e := newEnv(b)
	alice := owner.New()
	cc := e.crypto(b, workload.Apps)
	for _, p := range []struct {
		name    string
		purpose vaultv1.Purpose
	}{{"app-content", vaultv1.Purpose_PURPOSE_APP_CONTENT}, {"prompt-durable", vaultv1.Purpose_PURPOSE_PROMPT_OWNER_VIEW}} {
		for _, n := range []int{1, 100} {
			enc := make([]*vaultv1.EncryptItem, n)
			for i := range enc {
				enc[i] = &vaultv1.EncryptItem{Binding: bind(fmt.Sprintf("app/%d", i), "name"), Plaintext: []byte("My little app, number " + fmt.Sprint(i))}
			}
			cts := e.encrypt(b, alice, enc...).GetCiphertexts()
			req := &vaultv1.DecryptRequest{Purpose: p.purpose, Items: make([]*vaultv1.DecryptItem, n)}
			for i := range req.Items {
				req.Items[i] = &vaultv1.DecryptItem{Binding: enc[i].GetBinding(), Ciphertext: cts[i]}
			}
			b.Run(fmt.Sprintf("%s-items-%d", p.name, n), func(b *testing.B) {
				reportLatencies(b, func() error {
					_, err := cc.Decrypt(as(alice), req)
					return err
				})
			})
		}
	}
}

// BenchmarkDecryptDataKeyRPC measures opening one wrapped data key over mTLS gRPC (cached
// tenant key, audited): the vault's share of reading an envelope-encrypted object, for SERVE
// (relaxed commit) and APP_CONTENT (durable commit); and GenerateDataKey, its share of
// writing one (durable).
func BenchmarkDecryptDataKeyRPC(b *testing.B) {
	e := newEnv(b)
	alice := owner.New()
	file := bind("version/x/1/f", "content")
	wrapped := e.generateKeys(b, alice, file).GetKeys()[0].GetWrapped()
	cc := e.crypto(b, workload.Apps)
	for _, p := range []struct {
		name    string
		purpose vaultv1.Purpose
	}{{"serve", vaultv1.Purpose_PURPOSE_SERVE}, {"app-content-durable", vaultv1.Purpose_PURPOSE_APP_CONTENT}} {
		req := &vaultv1.DecryptDataKeyRequest{Purpose: p.purpose, Items: []*vaultv1.WrappedDataKey{{Binding: file, Wrapped: wrapped}}}
		b.Run("decrypt-"+p.name, func(b *testing.B) {
			reportLatencies(b, func() error {
				_, err := cc.DecryptDataKey(as(alice), req)
				return err
			})
		})
	}
	gen := &vaultv1.GenerateDataKeyRequest{Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT, Bindings: []*vaultv1.Binding{file}}
	b.Run("generate-durable", func(b *testing.B) {
		reportLatencies(b, func() error {
			_, err := cc.GenerateDataKey(as(alice), gen)
			return err
		})
	})
}
