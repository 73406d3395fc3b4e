// Package pgtest gives a test its own PostgreSQL database, shaped exactly like a service's:
// a fresh database, a service schema, a migration role and a runtime role, migrations applied
// by database.Migrate and the runtime pool opened by database.Open. Names carry a random
// token, so parallel tests and packages never meet, and everything is dropped at cleanup.
//
// It talks to the server at FORGE_TEST_POSTGRES_URL (a superuser; default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). When that server does not
// answer the test fails, saying to run `make test`, which starts it: a storage test that
// skips proves nothing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/forgeapps/backbone/pkg/database"
)

// EnvAdminURL names the environment variable holding the administrator's URL.
const EnvAdminURL = "FORGE_TEST_POSTGRES_URL"

// DefaultAdminURL is used when EnvAdminURL is unset: the local server `make test` starts.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// setupTimeout bounds creating (or dropping) one test database.
const setupTimeout = time.Minute

// Spec says what a test database holds.
type Spec struct {
	// Schema is the service schema ("apps", ...); the default is "svc".
	Schema string
	// Sources are the migrations applied after the platform's, in order.
	Sources []database.Source
	// Options configure the runtime pool (MaxConns, MaxTxAttempts); Options.Schema defaults
	// to Schema.
	Options database.Options
}

// Env is one test's database.
type Env struct {
	// Names are the database, schema and roles made for this test.
	Names database.Spec
	// AdminURL reaches this test's database as the administrator (a superuser).
	AdminURL string
	// MigrationURL and RuntimeURL reach it as the migration and runtime roles.
	MigrationURL, RuntimeURL string
	// DB is the runtime pool, as a service would open it.
	DB *database.DB
	// Migrator is a pool of the migration role (search_path: the schema): the table owner
	// with BYPASSRLS, for tests that must act outside RLS (seeding, baselines, checks).
	Migrator *pgxpool.Pool
}

// New makes a fresh database for tb and drops it, with its roles, when tb ends.
func New(tb testing.TB, spec Spec) *Env {
	tb.Helper()
	if spec.Schema == "" {
		spec.Schema = "svc"
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	base := AdminURL()
	admin := connectAdmin(ctx, tb, base)
	_ = admin.Close(ctx) // reachable: the rest of New works through its own connections

	token := randomToken(tb)
	names := database.Spec{
		Database:      "forge_test_" + spec.Schema + "_" + token,
		Schema:        spec.Schema,
		MigrationRole: spec.Schema + "_migration_" + token,
		RuntimeRole:   spec.Schema + "_runtime_" + token,
	}
	// Registered first so that it runs last, after the pools are closed.
	tb.Cleanup(func() { drop(tb, base, names) })

	if err := database.Bootstrap(ctx, base, names); err != nil {
		tb.Fatalf("pgtest: bootstrap: %v", err)
	}
	migrationURL, runtimeURL, err := names.URLs(base)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	adminURL, err := withDatabase(base, names.Database)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if err := database.Migrate(ctx, migrationURL, database.Migrations{
		Schema: names.Schema, RuntimeRole: names.RuntimeRole, Sources: spec.Sources,
	}); err != nil {
		tb.Fatalf("pgtest: migrate: %v", err)
	}
	migratorCfg, err := pgxpool.ParseConfig(migrationURL)
	if err != nil {
		tb.Fatalf("pgtest: migration pool: %v", err)
	}
	migratorCfg.ConnConfig.RuntimeParams["search_path"] = names.Schema
	migrator, err := pgxpool.NewWithConfig(ctx, migratorCfg)
	if err != nil {
		tb.Fatalf("pgtest: migration pool: %v", err)
	}
	tb.Cleanup(migrator.Close)
	if spec.Options.Schema == "" {
		spec.Options.Schema = names.Schema
	}
	db, err := database.Open(ctx, runtimeURL, spec.Options)
	if err != nil {
		tb.Fatalf("pgtest: open runtime pool: %v", err)
	}
	tb.Cleanup(db.Close)
	return &Env{
		Names:        names,
		AdminURL:     adminURL,
		MigrationURL: migrationURL,
		RuntimeURL:   runtimeURL,
		DB:           db,
		Migrator:     migrator,
	}
}

// AdminURL returns the administrator's URL tests use.
func AdminURL() string {
	if u := os.Getenv(EnvAdminURL); u != "" {
		return u
	}
	return DefaultAdminURL
}

// ExecAdmin runs statements in the test's database as the administrator, for what only a
// superuser can do (altering roles, changing owners).
func (e *Env) ExecAdmin(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.AdminURL)
	if err != nil {
		tb.Fatalf("pgtest: admin connect: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("pgtest: admin exec %q: %v", sql, err)
	}
}

func connectAdmin(ctx context.Context, tb testing.TB, base string) *pgx.Conn {
	tb.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		tb.Fatalf("pgtest: PostgreSQL at %s is not reachable (%v).\n"+
			"Run `make test`, which starts it, or point %s at a running server (as a superuser).",
			redact(base), err, EnvAdminURL)
	}
	return conn
}

func drop(tb testing.TB, base string, names database.Spec) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := database.Drop(ctx, base, names); err != nil {
		tb.Errorf("pgtest: cleanup: %v", err)
	}
}

func withDatabase(base, database string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u.Path = "/" + database
	u.RawPath = ""
	return u.String(), nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func randomToken(tb testing.TB) string {
	tb.Helper()
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("pgtest: random: %v", err)
	}
	return hex.EncodeToString(b[:])
}
