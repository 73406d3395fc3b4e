package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/devca"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
)

// syncBuffer is the service's stdout, read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The binary's two commands, wired as in production: `migrate` applies the schema to an
// empty database, and `serve` passes the posture check with that schema, serves mTLS gRPC,
// runs its consumer, and stops cleanly.
func TestRunMigrateThenServe(t *testing.T) {
	pg := pgtest.New(t, pgtest.Spec{Schema: postgres.Schema}) // bootstrapped, platform source only
	nats := natstest.Start(t)
	certs := t.TempDir()
	require.NoError(t, devca.WriteDir(certs, workload.DefaultTrustDomain, []string{workload.Tenant, workload.Gateway}, time.Hour))
	addrs := grpctest.FreeAddrs(t, 2)
	grpcAddr := addrs[0]
	vars := map[string]string{
		"FORGE_REGION":           "us-east",
		"FORGE_GRPC_ADDR":        grpcAddr,
		"FORGE_HEALTH_ADDR":      addrs[1],
		"FORGE_TLS_CERT":         filepath.Join(certs, "tenant.pem"),
		"FORGE_TLS_KEY":          filepath.Join(certs, "tenant-key.pem"),
		"FORGE_TLS_CA":           filepath.Join(certs, "ca.pem"),
		"DATABASE_URL":           pg.RuntimeURL,
		"MIGRATION_DATABASE_URL": pg.MigrationURL,
		"FORGE_DB_RUNTIME_ROLE":  pg.Names.RuntimeRole,
		"NATS_URL":               nats.URL(),
		"FORGE_SESSION_TTL":      "1h",
	}
	getenv := func(k string) string { return vars[k] }
	ctx := context.Background()

	require.NoError(t, run(ctx, []string{"migrate"}, getenv, &syncBuffer{}))
	require.NoError(t, database.CheckPosture(ctx, pg.DB, postgres.Posture()))
	require.NoError(t, run(ctx, []string{"migrate"}, getenv, &syncBuffer{}), "migrate twice is a no-op")

	out := &syncBuffer{}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(sctx, []string{"serve"}, getenv, out) }()
	var stopOnce sync.Once
	var stopErr error
	stop := func() error {
		stopOnce.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("serve did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })

	src, err := mtls.NewSource(mtls.Files{
		CertFile: filepath.Join(certs, "gateway.pem"),
		KeyFile:  filepath.Join(certs, "gateway-key.pem"),
		CAFile:   filepath.Join(certs, "ca.pem"),
	}, workload.DefaultTrustDomain, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cc, err := grpcclient.Dial(grpcAddr, src.ClientCredentials(workload.Must(workload.DefaultTrustDomain, workload.Tenant)), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	sessions := tenantv1.NewSessionServiceClient(cc)

	var resp *tenantv1.SignInResponse
	require.Eventually(t, func() bool {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		defer ccancel()
		resp, err = sessions.SignIn(cctx, &tenantv1.SignInRequest{Identity: &tenantv1.VerifiedIdentity{
			Issuer: "https://idp.test", Subject: "main", Email: "main@example.com", EmailVerified: true,
		}})
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "serve answers SignIn (last error: %v; log: %s)", func() error { return err }, out)
	require.True(t, resp.GetCreated())
	auth, err := sessions.Authenticate(ctx, &tenantv1.AuthenticateRequest{
		Credential: &tenantv1.AuthenticateRequest_SessionToken{SessionToken: resp.GetSessionToken()},
	})
	require.NoError(t, err)
	require.Equal(t, resp.GetAccount().GetOwnerId(), auth.GetOwnerId())
	require.WithinDuration(t, time.Now().Add(time.Hour), auth.GetExpireTime().AsTime(), time.Minute, "FORGE_SESSION_TTL is applied")
	require.NotContains(t, out.String(), resp.GetSessionToken(), "the token is never logged")

	require.NoError(t, stop(), "serve stops cleanly")
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	vars := map[string]string{
		"FORGE_GRPC_ADDR": "127.0.0.1:0", "FORGE_TLS_CERT": "c", "FORGE_TLS_KEY": "k", "FORGE_TLS_CA": "a",
		"FORGE_SESSION_TTL": "forever",
	}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return vars[k] }, &syncBuffer{})
	require.ErrorContains(t, err, "FORGE_SESSION_TTL")
	require.False(t, errors.Is(err, context.Canceled))
}
