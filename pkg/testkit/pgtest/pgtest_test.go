package pgtest_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
)

func TestNewMakesAFreshDatabaseAndDropsIt(t *testing.T) {
	var first, second database.Spec
	t.Run("two environments", func(t *testing.T) {
		a := pgtest.New(t, pgtest.Spec{Schema: "probe"})
		b := pgtest.New(t, pgtest.Spec{Schema: "probe"})
		first, second = a.Names, b.Names
		require.NotEqual(t, first.Database, second.Database)
		require.NotEqual(t, first.RuntimeRole, second.RuntimeRole)
		require.NotEqual(t, first.MigrationRole, second.MigrationRole)

		var runtimeUser string
		require.NoError(t, a.DB.SystemTx(t.Context(), func(ctx context.Context, tx database.Tx) error {
			return tx.QueryRow(ctx, `select current_user::text`).Scan(&runtimeUser)
		}))
		require.Equal(t, a.Names.RuntimeRole, runtimeUser, "DB runs as the runtime role")
		var migrationUser string
		require.NoError(t, a.Migrator.QueryRow(t.Context(), `select current_user::text`).Scan(&migrationUser))
		require.Equal(t, a.Names.MigrationRole, migrationUser, "Migrator runs as the migration role")
		require.NoError(t, database.CheckPosture(t.Context(), a.DB, database.Posture{Schema: "probe"}))
	})

	conn, err := pgx.Connect(t.Context(), pgtest.AdminURL())
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.WithoutCancel(t.Context())) }()
	for _, names := range []database.Spec{first, second} {
		var dbs, roles int
		require.NoError(t, conn.QueryRow(t.Context(), `select count(*) from pg_database where datname = $1`, names.Database).Scan(&dbs))
		require.NoError(t, conn.QueryRow(t.Context(), `select count(*) from pg_roles where rolname in ($1, $2)`,
			names.RuntimeRole, names.MigrationRole).Scan(&roles))
		require.Zero(t, dbs, "database %s dropped", names.Database)
		require.Zero(t, roles, "roles of %s dropped", names.Database)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends the goroutine, as
// the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper()          {}
func (r *fatalRecorder) Cleanup(f func()) { r.TB.Cleanup(f) }
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestUnreachableServerFailsWithDirections(t *testing.T) {
	t.Setenv(pgtest.EnvAdminURL, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		pgtest.New(rec, pgtest.Spec{})
	}()
	<-done
	require.Contains(t, rec.msg, "make test", "the failure says how to start PostgreSQL")
	require.Contains(t, rec.msg, "127.0.0.1:1")
}
