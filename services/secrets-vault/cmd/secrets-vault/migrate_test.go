package main

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
)

// TestMigrateNeedsOnlyItsVariables runs `migrate` as the Kubernetes migration Job does: with
// the migration role's URL and the runtime role it grants to, and none of serve's settings
// (addresses, certificates, keys, buckets). serve still refuses to start without them.
func TestMigrateNeedsOnlyItsVariables(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.New(t, pgtest.Spec{Schema: postgres.Schema}) // bootstrapped, nothing of the service yet
	env := map[string]string{
		"MIGRATION_DATABASE_URL": pg.MigrationURL,
		"FORGE_DB_RUNTIME_ROLE":  pg.Names.RuntimeRole,
	}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"migrate"}, getenv, &out))
	require.Contains(t, out.String(), "migrations applied")
	var table *string
	require.NoError(t, pg.Migrator.QueryRow(ctx, `SELECT to_regclass($1)::text`, postgres.Schema+".keyrings").Scan(&table))
	require.NotNil(t, table, "the service's migrations ran")

	require.Error(t, run(ctx, []string{"serve"}, getenv, io.Discard), "serve needs its own configuration")
}
