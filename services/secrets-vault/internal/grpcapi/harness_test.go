package grpcapi_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"gocloud.dev/blob/fileblob"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forgeapps/backbone/pkg/database"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/grpcserver"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/telemetry"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/grpcapi"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one vault, as production runs it, for one test: a fresh database, a root key file,
// a keyring backup directory, and the real gRPC server with mTLS, the interceptor chain, the
// workload table, a captured logger and an in-memory span exporter.
type env struct {
	pg     *pgtest.Env
	vault  *vault.Vault
	backup *keybackup.Bucket
	pki    *grpctest.PKI
	addr   string
	logs   *syncBuffer
	spans  *tracetest.InMemoryExporter
	store  vault.Store
	conns  map[string]*grpc.ClientConn
	mu     sync.Mutex
	// root is the test that made the env: connections live as long as it does.
	root testing.TB
}

type envOptions struct {
	// wrapStore lets a test put a failing or panicking store under the vault.
	wrapStore func(vault.Store) vault.Store
	// wrapServer lets a test register a wrapper of the real server.
	wrapServer func(*grpcapi.Server) register
}

type register func(grpc.ServiceRegistrar)

func newEnv(tb testing.TB, opts ...func(*envOptions)) *env {
	tb.Helper()
	var o envOptions
	for _, f := range opts {
		f(&o)
	}
	pg := pgtest.New(tb, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})

	keyPath := filepath.Join(tb.TempDir(), "kek")
	require.NoError(tb, kek.NewKeyFile(keyPath))
	provider, err := kek.Open("file://" + keyPath)
	require.NoError(tb, err)

	bucket, err := fileblob.OpenBucket(tb.TempDir(), nil)
	require.NoError(tb, err)
	backup := keybackup.New(bucket)
	tb.Cleanup(func() { _ = backup.Close() })

	logs := &syncBuffer{}
	logger := telemetry.NewLogger(logs, "secrets-vault", slog.LevelDebug)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tel := &telemetry.Providers{Tracer: tp, Meter: metricnoop.NewMeterProvider(), Propagator: telemetry.Propagator()}

	var store vault.Store = postgres.NewStore(pg.DB)
	if o.wrapStore != nil {
		store = o.wrapStore(store)
	}
	v, err := vault.New(vault.Config{Store: store, KEK: provider, Backup: backup, Logger: logger,
		Self: "spiffe://forge.internal/secrets-vault"})
	require.NoError(tb, err)

	pki := grpctest.NewPKI(tb)
	srv := grpcapi.New(v, logger)
	reg := func(r grpc.ServiceRegistrar) { grpcapi.Register(r, srv) }
	if o.wrapServer != nil {
		reg = o.wrapServer(srv)
	}
	gs, err := grpcserver.New(grpcserver.Config{
		Name:          workload.SecretsVault,
		Credentials:   pki.Source(tb, workload.SecretsVault).ServerCredentials(),
		Table:         grpcapi.Table(),
		Region:        owner.DefaultRegion,
		Logger:        logger,
		Telemetry:     tel,
		ShutdownGrace: 5 * time.Second,
	}, reg)
	require.NoError(tb, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gs.Serve(ctx, lis, nil) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("vault server: %v", err)
		}
	})
	return &env{pg: pg, vault: v, backup: backup, pki: pki, addr: lis.Addr().String(), logs: logs,
		spans: spans, store: store, conns: map[string]*grpc.ClientConn{}, root: tb}
}

// conn returns a connection presenting workload `as`.
func (e *env) conn(tb testing.TB, as string) *grpc.ClientConn {
	tb.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if cc, ok := e.conns[as]; ok {
		return cc
	}
	cc := e.pki.Dial(e.root, e.addr, as, workload.SecretsVault)
	e.conns[as] = cc
	return cc
}

func (e *env) secrets(tb testing.TB) vaultv1.SecretServiceClient {
	return vaultv1.NewSecretServiceClient(e.conn(tb, workload.Gateway))
}

func (e *env) registry(tb testing.TB) vaultv1.AppRegistryServiceClient {
	return vaultv1.NewAppRegistryServiceClient(e.conn(tb, workload.Apps))
}

func (e *env) resolver(tb testing.TB, as string) vaultv1.SecretResolverServiceClient {
	return vaultv1.NewSecretResolverServiceClient(e.conn(tb, as))
}

func (e *env) crypto(tb testing.TB, as string) vaultv1.CryptoServiceClient {
	return vaultv1.NewCryptoServiceClient(e.conn(tb, as))
}

func (e *env) keys(tb testing.TB, as string) vaultv1.KeyServiceClient {
	return vaultv1.NewKeyServiceClient(e.conn(tb, as))
}

func as(o owner.ID) context.Context { return grpctest.AsOwner(context.Background(), o) }

// registerApp registers a fresh app for o, as apps does when it creates one.
func (e *env) registerApp(tb testing.TB, o owner.ID) string {
	tb.Helper()
	app := uuid.NewString()
	_, err := e.registry(tb).RegisterApp(as(o), &vaultv1.RegisterAppRequest{AppId: app})
	require.NoError(tb, err)
	return app
}

func headerInjection() *vaultv1.Injection {
	return &vaultv1.Injection{Kind: vaultv1.Injection_KIND_HEADER, HeaderName: "Authorization", Prefix: "Bearer "}
}

// putSecret stores a secret through the gateway's API.
func (e *env) putSecret(tb testing.TB, o owner.ID, app, name, value string) {
	tb.Helper()
	_, err := e.secrets(tb).PutSecret(as(o), &vaultv1.PutSecretRequest{
		AppId: app, Name: name, Value: value, UpstreamHost: "api.example.com", Injection: headerInjection(),
	})
	require.NoError(tb, err)
}

// encrypt seals items for o as apps.
func (e *env) encrypt(tb testing.TB, o owner.ID, items ...*vaultv1.EncryptItem) *vaultv1.EncryptResponse {
	tb.Helper()
	resp, err := e.crypto(tb, workload.Apps).Encrypt(as(o), &vaultv1.EncryptRequest{
		Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT, Items: items,
	})
	require.NoError(tb, err)
	return resp
}

func bind(object, field string) *vaultv1.Binding {
	return &vaultv1.Binding{Object: object, Field: field}
}

// snapshot hashes every vault table (read as the migration role, outside RLS), so a test can
// prove a refused request changed nothing.
func (e *env) snapshot(tb testing.TB) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, table := range []string{"keyrings", "tenant_keys", "registered_apps", "secrets", "audit_log", "outbox", "inbox"} {
		var sum *string
		err := e.pg.Migrator.QueryRow(context.Background(),
			`SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM `+table+` t`).Scan(&sum)
		require.NoError(tb, err)
		if sum != nil {
			out[table] = *sum
		} else {
			out[table] = ""
		}
	}
	return out
}

// count counts rows of a table for an owner, as the migration role.
func (e *env) count(tb testing.TB, table string, o owner.ID) int {
	tb.Helper()
	var n int
	require.NoError(tb, e.pg.Migrator.QueryRow(context.Background(),
		`SELECT count(*) FROM `+table+` WHERE owner_id = $1`, o).Scan(&n))
	return n
}

// requireCode asserts err is a status with code c.
func requireCode(tb testing.TB, err error, c codes.Code) *status.Status {
	tb.Helper()
	require.Error(tb, err)
	st, ok := status.FromError(err)
	require.True(tb, ok, "not a status: %v", err)
	require.Equal(tb, c, st.Code(), "message: %s", st.Message())
	return st
}

// posture is the check the service runs at start.
func posture() database.Posture {
	return database.Posture{Schema: postgres.Schema, DefinerFunctions: postgres.DefinerFunctions()}
}
