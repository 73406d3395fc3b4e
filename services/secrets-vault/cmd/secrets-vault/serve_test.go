package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/johannesboyne/gofakes3"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/devca"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup/s3test"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
)

// syncWriter collects the service's log output written from many goroutines.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// serveEnv is the environment serve runs with in production: certificates, the root key, a
// migrated database, NATS, a free gRPC address and a development keyring directory. It returns
// the certificates' directory and the root key too.
func serveEnv(t *testing.T) (env map[string]string, certs string, key []byte) {
	t.Helper()
	pg := pgtest.New(t, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	ns := natstest.Start(t)
	dir := t.TempDir()
	certs = filepath.Join(dir, "certs")
	require.NoError(t, devca.WriteDir(certs, workload.DefaultTrustDomain,
		[]string{workload.SecretsVault, workload.Gateway, workload.Apps, workload.SandboxOrigin}, time.Hour))
	key = make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	keyPath := filepath.Join(dir, "kek")
	require.NoError(t, os.WriteFile(keyPath, key, 0o600))
	env = map[string]string{
		"FORGE_GRPC_ADDR":          grpctest.FreeAddrs(t, 1)[0],
		"FORGE_TLS_CERT":           filepath.Join(certs, "secrets-vault.pem"),
		"FORGE_TLS_KEY":            filepath.Join(certs, "secrets-vault-key.pem"),
		"FORGE_TLS_CA":             filepath.Join(certs, "ca.pem"),
		"DATABASE_URL":             pg.RuntimeURL,
		"NATS_URL":                 ns.URL(),
		"FORGE_KEY_PROVIDER":       "file://" + keyPath,
		"FORGE_KEYRING_BACKUP_URL": "file://" + filepath.Join(dir, "keyring"),
	}
	return env, certs, key
}

// TestServe starts the real binary's run as production wiring does (posture check, NATS,
// relay, consumers, rewrap job, key provider, keyring backups) and makes calls over mTLS.
func TestServe(t *testing.T) {
	env, certs, key := serveEnv(t)
	addr := env["FORGE_GRPC_ADDR"]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out syncWriter
	go func() { done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, &out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v\n%s", err, out.String())
		}
	})

	dial := func(as string) vaultv1.AppRegistryServiceClient {
		src, err := mtls.NewSource(mtls.Files{
			CertFile: filepath.Join(certs, as+".pem"), KeyFile: filepath.Join(certs, as+"-key.pem"), CAFile: filepath.Join(certs, "ca.pem"),
		}, workload.DefaultTrustDomain, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		cc, err := grpcclient.Dial(addr, src.ClientCredentials(workload.Must(workload.DefaultTrustDomain, workload.SecretsVault)), nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cc.Close() })
		return vaultv1.NewAppRegistryServiceClient(cc)
	}
	apps := dial(workload.Apps)
	ownerCtx := grpctest.AsOwner(context.Background(), owner.New())
	require.Eventually(t, func() bool {
		_, err := apps.RegisterApp(ownerCtx, &vaultv1.RegisterAppRequest{AppId: uuid.NewString()})
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "the service came up: %s", out.String())

	_, err := dial(workload.Gateway).RegisterApp(ownerCtx, &vaultv1.RegisterAppRequest{AppId: uuid.NewString()})
	require.Error(t, err, "the workload table is enforced")
	require.Contains(t, out.String(), `"grpc call"`)
	require.NotContains(t, out.String(), fmt.Sprintf("%x", key), "the root key never reaches the log")
}

// TestServeRefusesUncheckedKeyringBucket: serve does not start on a keyring bucket that keeps
// object versions (a shred would leave every old version of the wrapped keys behind), nor on
// one whose versioning its role may not read. The bucket is S3 over HTTP, as in production.
func TestServeRefusesUncheckedKeyringBucket(t *testing.T) {
	env, _, _ := serveEnv(t)
	srv := s3test.Start(t)
	cases := []struct {
		name    string
		url     func(t *testing.T) string
		wantErr string
	}{
		{name: "versioning enabled", url: func(t *testing.T) string {
			u := srv.CreateBucket(t, "enabled")
			srv.SetVersioning(t, "enabled", gofakes3.VersioningEnabled)
			return u
		}, wantErr: `keybackup: bucket "enabled" has versioning Enabled`},
		{name: "versioning suspended", url: func(t *testing.T) string {
			u := srv.CreateBucket(t, "suspended")
			srv.SetVersioning(t, "suspended", gofakes3.VersioningEnabled)
			srv.SetVersioning(t, "suspended", gofakes3.VersioningSuspended)
			return u
		}, wantErr: `keybackup: bucket "suspended" has versioning Suspended`},
		{name: "versioning not readable", url: func(t *testing.T) string {
			denied := s3test.Start(t)
			denied.DenyVersioningRead()
			return denied.CreateBucket(t, "denied")
		}, wantErr: "the vault's role needs s3:GetBucketVersioning"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			caseEnv := maps.Clone(env)
			caseEnv["FORGE_KEYRING_BACKUP_URL"] = c.url(t)
			// Bounded: were the bucket accepted, serve would run until the deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out syncWriter
			err := run(ctx, []string{"serve"}, func(k string) string { return caseEnv[k] }, &out)
			require.ErrorContains(t, err, c.wantErr, "serve refused the bucket: %s", out.String())
		})
	}
}
