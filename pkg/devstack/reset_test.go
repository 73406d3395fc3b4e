package devstack_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/devstack"
)

// TestReset: the databases and roles of one stack and its data directories are gone after a
// reset, the certificates stay, another stack's database is untouched, and a second reset
// (nothing left) succeeds.
func TestReset(t *testing.T) {
	ctx := context.Background()
	admin := devstack.LocalPostgresURL
	require.NoError(t, devstack.PingPostgres(ctx, admin), "make test starts PostgreSQL (make deps)")
	suffix := fmt.Sprintf("_reset%d", time.Now().UnixNano()%1_000_000_000)
	other := suffix + "_other"
	var withDB []devstack.ServiceSpec
	for _, sp := range devstack.Specs() {
		if sp.Schema != "" {
			withDB = append(withDB, sp)
			require.NoError(t, database.Bootstrap(ctx, admin, sp.DatabaseSpec(suffix)))
		}
	}
	require.NotEmpty(t, withDB)
	keep := withDB[0].DatabaseSpec(other)
	require.NoError(t, database.Bootstrap(ctx, admin, keep))
	t.Cleanup(func() { _ = database.Drop(context.Background(), admin, keep) })

	state := t.TempDir()
	for _, f := range []string{"blob/apps/object", "keys/kek-us-east", "nats/jetstream/x", "certs/ca.pem"} {
		require.NoError(t, os.MkdirAll(filepath.Join(state, filepath.Dir(f)), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(state, f), []byte("x"), 0o600))
	}

	cfg := devstack.ResetConfig{StateDir: state, AdminURL: admin, DatabaseSuffix: suffix, Logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, devstack.Reset(ctx, cfg))

	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(ctx)
	exists := func(query, name string) bool {
		var ok bool
		require.NoError(t, conn.QueryRow(ctx, query, name).Scan(&ok))
		return ok
	}
	const dbQ = `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`
	const roleQ = `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`
	for _, sp := range withDB {
		spec := sp.DatabaseSpec(suffix)
		require.False(t, exists(dbQ, spec.Database), spec.Database)
		require.False(t, exists(roleQ, spec.MigrationRole), spec.MigrationRole)
		require.False(t, exists(roleQ, spec.RuntimeRole), spec.RuntimeRole)
	}
	require.True(t, exists(dbQ, keep.Database), "another stack's database stays")
	for _, dir := range []string{"blob", "keys", "nats"} {
		_, err := os.Stat(filepath.Join(state, dir))
		require.True(t, os.IsNotExist(err), dir)
	}
	_, err = os.Stat(filepath.Join(state, "certs", "ca.pem"))
	require.NoError(t, err, "the development certificates stay")

	require.NoError(t, devstack.Reset(ctx, cfg), "a second reset finds nothing and succeeds")
	require.Error(t, devstack.Reset(ctx, devstack.ResetConfig{AdminURL: admin}), "no state directory")
}
