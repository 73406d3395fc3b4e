package pgtest

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// RunFunc is a service binary's run function: its command line, its environment and its
// standard output.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// CheckMigrateCommand runs a service's `migrate` as the Kubernetes migration Job does: on a
// freshly bootstrapped database (schema), with the migration role's URL and the runtime role
// it grants to, and none of serve's settings (addresses, certificates, keys, buckets). It
// fails tb unless the migrations ran (table, a table of the service's own migrations, exists
// in the schema afterwards) and unless serve, given the same variables, refuses to start.
func CheckMigrateCommand(tb testing.TB, run RunFunc, schema, table string) {
	tb.Helper()
	ctx := context.Background()
	pg := New(tb, Spec{Schema: schema}) // bootstrapped, nothing of the service yet
	env := map[string]string{
		"MIGRATION_DATABASE_URL": pg.MigrationURL,
		"FORGE_DB_RUNTIME_ROLE":  pg.Names.RuntimeRole,
	}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(ctx, []string{"migrate"}, getenv, &out); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	if !strings.Contains(out.String(), "migrations applied") {
		tb.Fatalf("migrate did not report its migrations applied; output:\n%s", out.String())
	}
	var found *string
	if err := pg.Migrator.QueryRow(ctx, `SELECT to_regclass($1)::text`, schema+"."+table).Scan(&found); err != nil {
		tb.Fatalf("look up %s.%s: %v", schema, table, err)
	}
	if found == nil {
		tb.Fatalf("migrate ran but %s.%s does not exist: the service's migrations did not run", schema, table)
	}
	if err := run(ctx, []string{"serve"}, getenv, io.Discard); err == nil {
		tb.Fatalf("serve started with only the migration variables: it must need its own configuration")
	}
}
