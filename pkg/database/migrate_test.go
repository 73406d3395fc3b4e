package database_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
)

// eventsSource stands for a shared source such as pkg/events' outbox: the service source
// after it references its table, so applying the sources out of order fails.
func eventsSource() database.Source {
	return sqlSource("events", map[string]string{"00001_outbox.sql": `-- +goose Up
CREATE TABLE outbox (
    owner_id uuid NOT NULL,
    id uuid NOT NULL,
    subject text NOT NULL,
    PRIMARY KEY (owner_id, id)
);
CALL forge_tenant_table('outbox');
`})
}

func dependentSource() database.Source {
	return sqlSource("svc", map[string]string{
		"00001_items.sql": itemsMigration,
		"00002_receipts.sql": `-- +goose Up
CREATE TABLE receipts (
    owner_id uuid NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (owner_id, event_id),
    FOREIGN KEY (owner_id, event_id) REFERENCES outbox (owner_id, id)
);
CALL forge_tenant_table('receipts');
`,
	})
}

func TestMigrate(t *testing.T) {
	sources := []database.Source{eventsSource(), dependentSource()}
	env := pgtest.New(t, pgtest.Spec{Schema: "apps", Sources: sources})
	ctx := t.Context()
	migrations := database.Migrations{Schema: "apps", RuntimeRole: env.Names.RuntimeRole, Sources: sources}

	versions := func(t *testing.T) map[string][]int64 {
		t.Helper()
		got := map[string][]int64{}
		for _, name := range []string{database.PlatformSourceName, "events", "svc"} {
			rows, _ := env.Migrator.Query(ctx, `select version_id from `+
				pgx.Identifier{database.MigrationsSchema("apps"), name}.Sanitize()+` where is_applied and version_id > 0 order by 1`)
			v, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			require.NoError(t, err, name)
			got[name] = v
		}
		return got
	}

	t.Run("each source keeps its own versions", func(t *testing.T) {
		require.Equal(t, map[string][]int64{"platform": {1}, "events": {1}, "svc": {1, 2}}, versions(t))
	})

	t.Run("a second run changes nothing", func(t *testing.T) {
		before := versions(t)
		o := owner.New()
		_, err := env.Migrator.Exec(ctx, `insert into items (owner_id, body) values ($1, 'kept')`, o)
		require.NoError(t, err)

		require.NoError(t, database.Migrate(ctx, env.MigrationURL, migrations))

		require.Equal(t, before, versions(t))
		var body string
		require.NoError(t, env.DB.QueryRow(ctx, o, `select body from items where owner_id = $1`, o).Scan(&body))
		require.Equal(t, "kept", body)
		require.NoError(t, database.CheckPosture(ctx, env.DB, database.Posture{Schema: "apps"}))
	})

	t.Run("the runtime role cannot read the version tables", func(t *testing.T) {
		for _, name := range []string{database.PlatformSourceName, "events", "svc"} {
			table := pgx.Identifier{database.MigrationsSchema("apps"), name}.Sanitize()
			err := env.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
				_, err := tx.Exec(ctx, `select count(*) from `+table+` where version_id > $1`, 0)
				return err
			})
			require.Equal(t, "42501", pgCode(err), "%s: %v", name, err)
		}
	})

	t.Run("the runtime role gets exactly its table privileges", func(t *testing.T) {
		var privs []string
		err := env.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
			rows, _ := tx.Query(ctx, `select p from unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p
				where has_table_privilege(current_user, 'apps.items', p)`)
			var err error
			privs, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []string{"SELECT", "INSERT", "UPDATE", "DELETE"}, privs)
	})

	t.Run("the runtime role cannot run the platform's procedures", func(t *testing.T) {
		err := env.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
			_, err := tx.Exec(ctx, `call forge_tenant_table($1)`, "items")
			return err
		})
		require.Equal(t, "42501", pgCode(err), "%v", err)
		require.ErrorContains(t, err, "permission denied for procedure")
	})

	t.Run("sources run in the given order", func(t *testing.T) {
		reordered := pgtest.Spec{Schema: "apps"}
		other := pgtest.New(t, reordered)
		err := database.Migrate(ctx, other.MigrationURL, database.Migrations{
			Schema: "apps", RuntimeRole: other.Names.RuntimeRole,
			Sources: []database.Source{dependentSource(), eventsSource()},
		})
		require.ErrorContains(t, err, `relation "outbox" does not exist`)
	})
}

func TestMigrationsValidation(t *testing.T) {
	ok := database.Source{Name: "svc", FS: sqlSource("svc", nil).FS}
	tests := []struct {
		name string
		m    database.Migrations
	}{
		{name: "schema needing quotes", m: database.Migrations{Schema: "Apps", RuntimeRole: "r", Sources: []database.Source{ok}}},
		{name: "no runtime role", m: database.Migrations{Schema: "apps", Sources: []database.Source{ok}}},
		{name: "reserved source name", m: database.Migrations{Schema: "apps", RuntimeRole: "r", Sources: []database.Source{{Name: "platform", FS: ok.FS}}}},
		{name: "source named twice", m: database.Migrations{Schema: "apps", RuntimeRole: "r", Sources: []database.Source{ok, ok}}},
		{name: "source without files", m: database.Migrations{Schema: "apps", RuntimeRole: "r", Sources: []database.Source{{Name: "svc"}}}},
		{name: "source name needing quotes", m: database.Migrations{Schema: "apps", RuntimeRole: "r", Sources: []database.Source{{Name: "a.b", FS: ok.FS}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The URL is never dialled: validation comes first.
			require.Error(t, database.Migrate(t.Context(), "postgres://nobody@127.0.0.1:1/none", tt.m))
		})
	}
}

func TestBootstrapIsIdempotentAndRepairs(t *testing.T) {
	env := newItemsEnv(t, database.Options{})
	ctx := t.Context()
	env.ExecAdmin(t, `ALTER ROLE `+pgx.Identifier{env.Names.RuntimeRole}.Sanitize()+` BYPASSRLS`)
	env.ExecAdmin(t, `GRANT `+pgx.Identifier{env.Names.MigrationRole}.Sanitize()+` TO `+pgx.Identifier{env.Names.RuntimeRole}.Sanitize())
	require.Error(t, database.CheckPosture(ctx, env.DB, database.Posture{Schema: "apps"}))

	require.NoError(t, database.Bootstrap(ctx, pgtest.AdminURL(), env.Names))

	require.NoError(t, database.CheckPosture(ctx, env.DB, database.Posture{Schema: "apps"}))
}
