package grpcapi_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/forgeapps/backbone/pkg/events"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/testkit/stacktest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
	"github.com/forgeapps/backbone/services/apps/internal/blobstore"
	"github.com/forgeapps/backbone/services/apps/internal/grpcapi"
	"github.com/forgeapps/backbone/services/apps/internal/postgres"
	"github.com/forgeapps/backbone/services/apps/internal/tenant"
	"github.com/forgeapps/backbone/services/apps/internal/vault"
)

// env is the apps service in process (real Postgres, real object storage in a directory, the
// real gRPC server and interceptor chain over mTLS) talking to the real secrets-vault and
// tenant services, run as binaries by stacktest with their own databases.
type env struct {
	t       testing.TB
	st      *stacktest.Stack
	pg      *pgtest.Env
	blobDir string
	logs    *syncBuffer
	svc     *apps.Service
	store   *postgres.Store

	// Clients of apps as each workload.
	gateway, builder, sandbox, lifecycle, tenantWL clients
	// Clients of the tenant service.
	tenantAsGateway   tenantv1.SessionServiceClient
	tenantAsLifecycle tenantv1.TenantAdminServiceClient
	tenantAsBilling   tenantv1.TenantAdminServiceClient
}

type clients struct {
	apps     appsv1.AppServiceClient
	prompts  appsv1.PromptServiceClient
	refs     appsv1.ReferenceServiceClient
	versions appsv1.VersionServiceClient
	sharing  appsv1.SharingServiceClient
	discover appsv1.DiscoverServiceClient
	internal appsv1.AppsInternalServiceClient
}

func newClients(cc grpc.ClientConnInterface) clients {
	return clients{
		apps: appsv1.NewAppServiceClient(cc), prompts: appsv1.NewPromptServiceClient(cc),
		refs: appsv1.NewReferenceServiceClient(cc), versions: appsv1.NewVersionServiceClient(cc),
		sharing: appsv1.NewSharingServiceClient(cc), discover: appsv1.NewDiscoverServiceClient(cc),
		internal: appsv1.NewAppsInternalServiceClient(cc),
	}
}

const sandboxDomain = "apps.test:8443"

// label is an app's origin label: its ID without dashes.
func label(appID string) string { return strings.ReplaceAll(appID, "-", "") }

func newEnv(t testing.TB) *env {
	t.Helper()
	st := stacktest.Start(t, stacktest.Options{Services: []string{workload.SecretsVault, workload.Tenant}})
	e := &env{t: t, st: st, logs: &syncBuffer{}}
	e.pg = pgtest.New(t, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	e.blobDir = t.TempDir()
	blobs, err := blobstore.Open(context.Background(), "file://"+e.blobDir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = blobs.Close() })
	outbox, err := events.NewOutbox(events.OutboxConfig{Region: owner.USEast})
	require.NoError(t, err)

	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	vc := vault.New(st.Dial(t, workload.SecretsVault, workload.Apps), owner.USEast)
	e.store = postgres.NewStore(e.pg.DB, outbox, owner.USEast)
	e.svc, err = apps.New(apps.Config{
		Store: e.store, Crypto: vc, Blobs: blobs, Secrets: vc, Registry: vc,
		Tenants: tenant.New(st.Dial(t, workload.Tenant, workload.Apps), owner.USEast),
		Logger:  logger, Region: owner.USEast, SandboxDomain: sandboxDomain,
	})
	require.NoError(t, err)
	pki := grpctest.NewPKI(t)
	addr := pki.Start(t, grpctest.Server{Name: workload.Apps, Table: grpcapi.Table(), Logger: logger,
		Register: grpcapi.New(e.svc).Register})
	dial := func(as string) clients { return newClients(pki.Dial(t, addr, as, workload.Apps)) }
	e.gateway, e.builder, e.sandbox, e.lifecycle = dial(workload.Gateway), dial(workload.Builder),
		dial(workload.SandboxOrigin), dial(workload.DataLifecycle)
	e.tenantWL = dial(workload.Tenant)
	e.tenantAsGateway = tenantv1.NewSessionServiceClient(st.Dial(t, workload.Tenant, workload.Gateway))
	e.tenantAsLifecycle = tenantv1.NewTenantAdminServiceClient(st.Dial(t, workload.Tenant, workload.DataLifecycle))
	e.tenantAsBilling = tenantv1.NewTenantAdminServiceClient(st.Dial(t, workload.Tenant, workload.Billing))
	return e
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// person is a tenant signed in at the tenant service (as the edge would).
type person struct {
	name  string
	email string
	id    owner.ID
}

func (e *env) signUp(name string, plan tenantv1.Plan) person {
	e.t.Helper()
	email := fmt.Sprintf("%s-%s@example.com", name, uuid.NewString()[:8])
	resp, err := e.tenantAsGateway.SignIn(ctxT(e.t), &tenantv1.SignInRequest{
		Identity: &tenantv1.VerifiedIdentity{Issuer: "https://idp.example.com", Subject: uuid.NewString(), Email: email, EmailVerified: true},
		Plan:     plan,
	})
	require.NoError(e.t, err)
	return person{name: name, email: email, id: owner.MustParse(resp.GetAccount().GetOwnerId())}
}

// as acts for p (what the edge does after authenticating p).
func as(t testing.TB, p person) context.Context { return grpctest.AsOwner(ctxT(t), p.id) }

// anonymous is a call with no owner.
func anonymous(t testing.TB) context.Context { return ctxT(t) }

// requireCode checks err's status code.
func requireCode(t testing.TB, want codes.Code, err error, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, want.String(), status.Code(err).String(), append([]any{"error: %v"}, err)...)
	_ = msgAndArgs
}

// rowCounts snapshots every table of the apps schema (as the table owner, past RLS), so a
// test can check that a refused call changed nothing.
func (e *env) rowCounts() map[string]string {
	e.t.Helper()
	ctx := ctxT(e.t)
	out := map[string]string{}
	for _, table := range []string{"apps", "prompts", "prompt_reads", "app_references", "versions", "version_files",
		"share_links", "collaborators", "listings", "listing_files", "owner_state"} {
		var digest string
		err := e.pg.Migrator.QueryRow(ctx, `select count(*)::text || ':' || coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from `+table+` t`).Scan(&digest)
		require.NoError(e.t, err)
		out[table] = digest
	}
	return out
}

// objects lists every object in the bucket directory.
func (e *env) objects() []string {
	e.t.Helper()
	var out []string
	require.NoError(e.t, filepath.WalkDir(e.blobDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".attrs") {
			return err
		}
		rel, _ := filepath.Rel(e.blobDir, path)
		out = append(out, rel)
		return nil
	}))
	return out
}

// grepStored reports whether needle appears in any stored byte: every table of the schema
// (as text, including bytea) and every object.
func (e *env) grepStored(needle string) []string {
	e.t.Helper()
	var hits []string
	ctx := ctxT(e.t)
	rows, err := e.pg.Migrator.Query(ctx, `select table_name from information_schema.tables where table_schema = $1`, postgres.Schema)
	require.NoError(e.t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(e.t, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(e.t, rows.Err())
	hexNeedle := fmt.Sprintf("%x", needle)
	for _, table := range tables {
		var n int
		err := e.pg.Migrator.QueryRow(ctx, `select count(*) from `+table+` t where strpos(t::text, $1) > 0 or strpos(t::text, $2) > 0`,
			needle, hexNeedle).Scan(&n)
		require.NoError(e.t, err)
		if n > 0 {
			hits = append(hits, "table "+table)
		}
	}
	for _, obj := range e.objects() {
		b, err := os.ReadFile(filepath.Join(e.blobDir, obj))
		require.NoError(e.t, err)
		if bytes.Contains(b, []byte(needle)) {
			hits = append(hits, "object "+obj)
		}
	}
	return hits
}

// accessReason decodes an AppAccessChanged payload's reason.
func accessReason(t testing.TB, payload []byte) string {
	t.Helper()
	var ev eventsv1.AppAccessChanged
	require.NoError(t, proto.Unmarshal(payload, &ev))
	return ev.GetReason().String()
}

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
