package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
)

func TestRunMigrateAndUsage(t *testing.T) {
	pg := pgtest.New(t, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	env := map[string]string{
		"FORGE_GRPC_ADDR": "127.0.0.1:0", "FORGE_TLS_CERT": "/nonexistent", "FORGE_TLS_KEY": "/nonexistent", "FORGE_TLS_CA": "/nonexistent",
		"MIGRATION_DATABASE_URL": pg.MigrationURL, "FORGE_DB_RUNTIME_ROLE": pg.Names.RuntimeRole,
	}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	// Already migrated by pgtest: a second run is a no-op, and it needs no key provider.
	require.NoError(t, run(context.Background(), []string{"migrate"}, getenv, &out))
	require.Contains(t, out.String(), "migrations applied")
	require.Error(t, run(context.Background(), []string{"bogus"}, getenv, &out))
	require.Error(t, run(context.Background(), nil, func(string) string { return "" }, &out), "missing configuration")
}
