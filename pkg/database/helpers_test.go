package database_test

import (
	"testing"
	"testing/fstest"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
)

// itemsMigration is a service migration as services write them: a tenant table with
// owner_id leading its primary key, made a tenant table by the platform procedure.
const itemsMigration = `-- +goose Up
CREATE TABLE items (
    owner_id uuid NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    body text NOT NULL,
    PRIMARY KEY (owner_id, id)
);
CALL forge_tenant_table('items');

-- +goose Down
DROP TABLE items;
`

// sqlSource is a migration source made of the given files.
func sqlSource(name string, files map[string]string) database.Source {
	fsys := fstest.MapFS{}
	for path, body := range files {
		fsys[path] = &fstest.MapFile{Data: []byte(body)}
	}
	return database.Source{Name: name, FS: fsys}
}

func itemsSource() database.Source {
	return sqlSource("svc", map[string]string{"00001_items.sql": itemsMigration})
}

func newItemsEnv(t testing.TB, opts database.Options) *pgtest.Env {
	t.Helper()
	return pgtest.New(t, pgtest.Spec{Schema: "apps", Sources: []database.Source{itemsSource()}, Options: opts})
}
