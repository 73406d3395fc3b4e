package lifecycle_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/devstack"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "go.work not found")
		dir = parent
	}
}

// TestRegistryCoversEveryOwnerTable applies every service's migrations (as they are in the
// repository now) to a fresh database each, lists from the catalog every table with an
// owner_id column, and fails when one is covered by no store of the purge registry: a table
// someone adds without teaching the purge about it turns this red.
func TestRegistryCoversEveryOwnerTable(t *testing.T) {
	root := repoRoot(t)
	covered := map[string]map[string]bool{} // schema -> table
	for _, s := range lifecycle.Registry() {
		if s.Schema == "" {
			continue
		}
		if covered[s.Schema] == nil {
			covered[s.Schema] = map[string]bool{}
		}
		for _, tbl := range s.Tables {
			require.False(t, covered[s.Schema][tbl], "%s.%s is on two stores", s.Schema, tbl)
			covered[s.Schema][tbl] = true
		}
		for tbl := range s.Retained {
			require.Contains(t, s.Tables, tbl, "a retained table must be one of the store's tables")
		}
	}
	checked := 0
	for _, spec := range devstack.Specs() {
		if spec.Schema == "" {
			continue
		}
		dir := filepath.Join(root, "services", spec.Name, "internal", "postgres", "migrations")
		files, _ := filepath.Glob(filepath.Join(dir, "*.sql"))
		if len(files) == 0 {
			continue // no migrations yet: no tables
		}
		t.Run(spec.Name, func(t *testing.T) {
			env := pgtest.New(t, pgtest.Spec{Schema: spec.Schema, Sources: []database.Source{
				{Name: events.MigrationSourceName, FS: events.Migrations()},
				{Name: "service", FS: os.DirFS(dir)},
			}})
			rows, err := env.Migrator.Query(context.Background(), `
				SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'owner_id' AND NOT a.attisdropped
				WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`, spec.Schema)
			require.NoError(t, err)
			var tables []string
			for rows.Next() {
				var n string
				require.NoError(t, rows.Scan(&n))
				tables = append(tables, n)
			}
			require.NoError(t, rows.Err())
			require.NotEmpty(t, tables)
			for _, tbl := range tables {
				require.True(t, covered[spec.Schema][tbl],
					"%s.%s holds tenant rows (owner_id) but no store of the purge registry covers it: add it to lifecycle.Registry() and make %s's purge delete it",
					spec.Schema, tbl, spec.Name)
			}
			for tbl := range covered[spec.Schema] {
				require.True(t, slices.Contains(tables, tbl), "the registry names %s.%s, which does not exist", spec.Schema, tbl)
			}
		})
		checked++
	}
	require.GreaterOrEqual(t, checked, 2, "at least data-lifecycle's own and another service's migrations were read")
}
