package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/fileblob"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/devstack"
	"github.com/forgeapps/backbone/pkg/events"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/testkit/stacktest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/backup"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/config"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/keyprovider"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
)

const dl = workload.DataLifecycle

var services = []string{workload.SecretsVault, workload.Tenant, workload.Apps, workload.SandboxOrigin, dl}

// canaries are the tenant's content; none may survive the purge anywhere readable.
const (
	canaryPrompt = "prompt-canary-5e1f0c: build me a weather app"
	canaryFile   = "<html>file-canary-93ab11</html>"
	canaryRef    = "reference-canary-77d0e2"
	canarySecret = "sk-secret-canary-0b8d54"
	canaryName   = "app-canary-c41a9f"
)

type stack struct {
	t      *testing.T
	st     *stacktest.Stack
	ctx    context.Context
	keyDir string
	backup string // the backup bucket's directory
	pools  map[string]*pgxpool.Pool
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, ctx: context.Background(), keyDir: t.TempDir(), backup: t.TempDir()}
	_, err := keyprovider.WriteSigningKey(filepath.Join(s.keyDir, "signing.pem"))
	require.NoError(t, err)
	s.st = stacktest.Start(t, stacktest.Options{Services: services, Env: map[string][]string{dl: {
		"FORGE_BACKUP_BLOB_URL=file://" + s.backup,
		"FORGE_CERT_SIGNING_KEY=" + filepath.Join(s.keyDir, "signing.pem"),
		"FORGE_LIFECYCLE_TICK=200ms",
		"FORGE_PURGE_RETRY_AFTER=20s",
	}, workload.SandboxOrigin: {"FORGE_CONSOLE_ORIGIN=https://console.localhost:1"}}})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, l := range strings.Split(s.st.Logs(), "\n") {
			if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
				t.Log(l)
			}
		}
	})
	return s
}

func (s *stack) owner(o owner.ID) context.Context { return grpctest.AsOwner(s.ctx, o) }

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(400 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// quiesce waits until every event of the stack was published and handled: every service's
// outbox is empty and no durable consumer has a message pending or unacknowledged. A scan
// after it also sees what late events (tenant's AccountStatusChanged(purged) after the
// purge) did to the other stores.
func (s *stack) quiesce(what string) {
	s.t.Helper()
	js := s.st.NATS.JetStream(s.t)
	eventually(s.t, what, 90*time.Second, func() bool {
		for _, svc := range services {
			var n int
			q := `SELECT count(*) FROM ` + pgx.Identifier{schemaOf(svc), "outbox"}.Sanitize()
			if err := s.pool(svc).QueryRow(s.ctx, q).Scan(&n); err != nil || n > 0 {
				return false
			}
		}
		for _, c := range events.DurableConsumers() {
			cons, err := js.Consumer(s.ctx, c.Stream, c.Durable)
			if err != nil {
				return false
			}
			info, err := cons.Info(s.ctx)
			if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
				return false
			}
		}
		return true
	})
}

// signUp creates a tenant through tenant's real sign-in (as the gateway would).
func (s *stack) signUp(email string) owner.ID {
	s.t.Helper()
	sess := tenantv1.NewSessionServiceClient(s.st.Dial(s.t, workload.Tenant, workload.Gateway))
	resp, err := sess.SignIn(s.ctx, &tenantv1.SignInRequest{Identity: &tenantv1.VerifiedIdentity{
		Issuer: "https://idp.test", Subject: email, Email: email, EmailVerified: true}})
	require.NoError(s.t, err)
	return owner.MustParse(resp.GetAccount().GetOwnerId())
}

// seed gives the tenant an app with a prompt, a reference, a version, a secret and a share link.
func (s *stack) seed(o owner.ID) string {
	s.t.Helper()
	cc := s.st.Dial(s.t, workload.Apps, workload.Gateway)
	ctx := s.owner(o)
	app, err := appsv1.NewAppServiceClient(cc).CreateApp(ctx, &appsv1.CreateAppRequest{Name: canaryName, Description: "d"})
	require.NoError(s.t, err)
	id := app.GetApp().GetAppId()
	_, err = appsv1.NewPromptServiceClient(cc).AddPrompt(ctx, &appsv1.AddPromptRequest{AppId: id, Kind: appsv1.Prompt_KIND_PROMPT, Text: canaryPrompt})
	require.NoError(s.t, err)
	_, err = appsv1.NewReferenceServiceClient(cc).UploadReference(ctx, &appsv1.UploadReferenceRequest{AppId: id, Filename: "notes.txt", ContentType: "text/plain", Content: []byte(canaryRef)})
	require.NoError(s.t, err)
	// The version's file is an envelope-sealed object: the export must open it, the purge
	// delete it.
	_, err = appsv1.NewVersionServiceClient(cc).CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: id, Files: []*appsv1.File{{Path: "index.html", ContentType: "text/html", Content: []byte(canaryFile)}}})
	require.NoError(s.t, err)
	_, err = appsv1.NewSharingServiceClient(cc).CreateShareLink(ctx, &appsv1.CreateShareLinkRequest{AppId: id})
	require.NoError(s.t, err)
	vc := s.st.Dial(s.t, workload.SecretsVault, workload.Gateway)
	_, err = vaultv1.NewSecretServiceClient(vc).PutSecret(ctx, &vaultv1.PutSecretRequest{AppId: id, Name: "OPENAI_KEY", Value: canarySecret,
		UpstreamHost: "api.openai.com", Injection: &vaultv1.Injection{Kind: vaultv1.Injection_KIND_HEADER, HeaderName: "Authorization", Prefix: "Bearer "}})
	require.NoError(s.t, err)
	return id
}

// pool returns one migration-role pool per service for the whole test (the shared server's
// connection slots are few).
func (s *stack) pool(svc string) *pgxpool.Pool {
	if p, ok := s.pools[svc]; ok {
		return p
	}
	if s.pools == nil {
		s.pools = map[string]*pgxpool.Pool{}
	}
	mig, _, err := s.st.DatabaseURLs(svc)
	require.NoError(s.t, err)
	cfg, err := pgxpool.ParseConfig(mig)
	require.NoError(s.t, err)
	cfg.MaxConns = 2
	p, err := pgxpool.NewWithConfig(s.ctx, cfg)
	require.NoError(s.t, err)
	s.t.Cleanup(p.Close)
	s.pools[svc] = p
	return p
}

func schemaOf(svc string) string {
	for _, sp := range devstack.Specs() {
		if sp.Name == svc {
			return sp.Schema
		}
	}
	return ""
}

func retained(svc, table string) bool {
	for _, st := range lifecycle.Registry() {
		if st.Service == svc && st.Schema != "" {
			if _, ok := st.Retained[table]; ok {
				return true
			}
		}
	}
	return false
}

// scanRows counts, in every table of every service, the rows of o, and looks for the canaries
// in every row's text form. Retained tables (the registry says why) may keep rows without content.
func (s *stack) scanRows(o owner.ID) (rows map[string]int, canaries []string) {
	s.t.Helper()
	rows = map[string]int{}
	for _, svc := range services {
		p := s.pool(svc)
		schema := schemaOf(svc)
		tables, err := pgxCollect(s.ctx, p, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`, schema)
		require.NoError(s.t, err)
		for _, tbl := range tables {
			q := pgx.Identifier{schema, tbl}.Sanitize()
			var hasOwner bool
			require.NoError(s.t, p.QueryRow(s.ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
				WHERE table_schema = $1 AND table_name = $2 AND column_name = 'owner_id')`, schema, tbl).Scan(&hasOwner))
			if hasOwner {
				var n int
				require.NoError(s.t, p.QueryRow(s.ctx, `SELECT count(*) FROM `+q+` WHERE owner_id = $1`, o).Scan(&n))
				if n > 0 {
					rows[svc+"."+tbl] = n
				}
			}
			texts, err := pgxCollect(s.ctx, p, `SELECT t::text FROM `+q+` t`)
			require.NoError(s.t, err)
			for _, txt := range texts {
				for _, c := range []string{canaryPrompt, canaryFile, canaryRef, canarySecret, canaryName} {
					if strings.Contains(txt, c) || strings.Contains(txt, hex.EncodeToString([]byte(c))) {
						canaries = append(canaries, svc+"."+tbl+": "+c)
					}
				}
			}
		}
	}
	return rows, canaries
}

func pgxCollect(ctx context.Context, p *pgxpool.Pool, sql string, args ...any) ([]string, error) {
	r, err := p.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(r, pgx.RowTo[string])
}

// scanObjects walks the services' object storage for anything of o or any canary.
func (s *stack) scanObjects(o owner.ID) []string {
	s.t.Helper()
	var found []string
	for _, svc := range []string{workload.Apps, dl} {
		u, err := url.Parse(s.st.Env(svc, "FORGE_BLOB_URL"))
		require.NoError(s.t, err)
		_ = filepath.WalkDir(u.Path, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(p)
			if strings.Contains(p, o.String()) || bytes.Contains(b, []byte(o.String())) {
				found = append(found, p)
			}
			for _, c := range []string{canaryPrompt, canaryFile, canaryRef, canarySecret} {
				if bytes.Contains(b, []byte(c)) {
					found = append(found, p+": "+c)
				}
			}
			return nil
		})
	}
	return found
}

func (s *stack) lifecycle() (lifecyclev1.ExportServiceClient, lifecyclev1.DeletionServiceClient) {
	cc := s.st.Dial(s.t, dl, workload.Gateway)
	return lifecyclev1.NewExportServiceClient(cc), lifecyclev1.NewDeletionServiceClient(cc)
}

func download(t *testing.T, ex lifecyclev1.ExportServiceClient, ctx context.Context, id, token string) ([]byte, error) {
	t.Helper()
	stream, err := ex.DownloadExport(ctx, &lifecyclev1.DownloadExportRequest{ExportId: id, Token: token})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
		buf.Write(m.GetData())
	}
}

func (s *stack) backupJob() *backup.Job {
	s.t.Helper()
	key := filepath.Join(s.keyDir, "backup.key")
	if _, err := os.Stat(key); err != nil {
		k := make([]byte, 32)
		_, err := io.ReadFull(rand.Reader, k)
		require.NoError(s.t, err)
		require.NoError(s.t, os.WriteFile(key, k, 0o600))
	}
	w, err := keyprovider.Open("file://" + key)
	require.NoError(s.t, err)
	b, err := fileblob.OpenBucket(s.backup, nil)
	require.NoError(s.t, err)
	s.t.Cleanup(func() { _ = b.Close() })
	return &backup.Job{Bucket: b, Keys: w, Log: slog.New(slog.DiscardHandler), Now: time.Now, Retention: 30 * 24 * time.Hour}
}

// dumpAll backs up every service database (as its migration role: BYPASSRLS, the owner).
func (s *stack) dumpAll(j *backup.Job) map[string]string {
	s.t.Helper()
	out := map[string]string{}
	for _, svc := range services {
		mig, _, err := s.st.DatabaseURLs(svc)
		require.NoError(s.t, err)
		tg := config.Target{Service: svc, Schema: schemaOf(svc)}
		if svc == workload.SecretsVault {
			tg.ExcludeData = []string{config.VaultKeyTable}
		}
		name, _, err := j.Dump(s.ctx, mig, tg)
		require.NoError(s.t, err)
		out[svc] = name
	}
	return out
}

// restoreScratch restores one dump into a fresh database migrated with the service's
// migrations from the repository, and returns a pool on it.
func (s *stack) restoreScratch(j *backup.Job, svc, name string) *pgxpool.Pool {
	s.t.Helper()
	h, _, closeFn, err := j.Open(s.ctx, name)
	require.NoError(s.t, err)
	require.NoError(s.t, closeFn())
	var sources []database.Source
	for _, src := range []string{events.MigrationSourceName} {
		if _, ok := h.Migrations[src]; ok {
			sources = append(sources, database.Source{Name: src, FS: events.Migrations()})
		}
	}
	for src := range h.Migrations {
		if src == database.PlatformSourceName || src == events.MigrationSourceName {
			continue
		}
		dir := filepath.Join(repoRoot(s.t), "services", svc, "internal", "postgres", "migrations")
		sources = append(sources, database.Source{Name: src, FS: os.DirFS(dir)})
	}
	env := pgtest.New(s.t, pgtest.Spec{Schema: h.Schema, Sources: sources})
	_, err = j.Restore(s.ctx, name, env.MigrationURL)
	require.NoError(s.t, err)
	return env.Migrator
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}

func code(err error) codes.Code { return status.Code(err) }

// emptySchema empties every table of a service schema, as the administrator (TRUNCATE is
// never granted to the service roles), ahead of an in-place restore.
func (s *stack) emptySchema(migrationURL, schema string) {
	s.t.Helper()
	u, err := url.Parse(migrationURL)
	require.NoError(s.t, err)
	admin, err := url.Parse(pgtest.AdminURL())
	require.NoError(s.t, err)
	admin.Path = u.Path
	conn, err := pgx.Connect(s.ctx, admin.String())
	require.NoError(s.t, err)
	defer func() { _ = conn.Close(s.ctx) }()
	tables, err := pgx.CollectRows(mustQuery(s.t, conn, s.ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, schema), pgx.RowTo[string])
	require.NoError(s.t, err)
	if len(tables) > 0 {
		_, err = conn.Exec(s.ctx, `TRUNCATE `+strings.Join(tables, ", ")+` CASCADE`)
		require.NoError(s.t, err)
	}
}

func mustQuery(t *testing.T, conn *pgx.Conn, ctx context.Context, sql string, args ...any) pgx.Rows {
	t.Helper()
	r, err := conn.Query(ctx, sql, args...)
	require.NoError(t, err)
	return r
}

// replayDeps connects a ledger replay as data-lifecycle would run it (its database as its
// runtime role, tenant and apps as the data-lifecycle workload).
func (s *stack) replayDeps(job *backup.Job) backup.ReplayDeps {
	s.t.Helper()
	_, rt, err := s.st.DatabaseURLs(dl)
	require.NoError(s.t, err)
	db, err := database.Open(s.ctx, rt, database.Options{Schema: postgres.Schema})
	require.NoError(s.t, err)
	s.t.Cleanup(db.Close)
	ob, err := events.NewOutbox(events.OutboxConfig{Region: owner.DefaultRegion})
	require.NoError(s.t, err)
	return backup.ReplayDeps{
		Ledger: job.Bucket, Store: postgres.New(db, ob),
		Tenant: tenantv1.NewTenantAdminServiceClient(s.st.Dial(s.t, workload.Tenant, dl)),
		Apps:   appsv1.NewAppsInternalServiceClient(s.st.Dial(s.t, workload.Apps, dl)),
		Now:    time.Now, Log: slog.New(slog.DiscardHandler),
	}
}
