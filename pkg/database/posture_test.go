package database_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
)

// postureMigration is a schema that follows every rule and uses every allowance: a tenant
// table, a listings table with a declared public-read policy, a security_invoker view and a
// reviewed SECURITY DEFINER function with a fixed search_path.
const postureMigration = `-- +goose Up
CREATE TABLE items (
    owner_id uuid NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    body text NOT NULL,
    PRIMARY KEY (owner_id, id)
);
CALL forge_tenant_table('items');

CREATE TABLE listings (
    owner_id uuid NOT NULL,
    id uuid NOT NULL,
    title text NOT NULL,
    PRIMARY KEY (owner_id, id)
);
CALL forge_tenant_table('listings');
CREATE POLICY public_read ON listings FOR SELECT USING (true);

CREATE VIEW item_bodies WITH (security_invoker = true) AS SELECT owner_id, id, body FROM items;

CREATE FUNCTION purge_owner(o uuid) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
AS 'WITH d AS (DELETE FROM apps.items WHERE owner_id = o RETURNING 1) SELECT count(*) FROM d';
`

var acceptedPosture = database.Posture{
	Schema:           "apps",
	DefinerFunctions: []string{"purge_owner"},
	ExtraPolicies:    []database.TablePolicy{{Table: "listings", Policy: "public_read"}},
}

func TestCheckPosture(t *testing.T) {
	tests := []struct {
		name string
		// migration runs as the migration role after postureMigration.
		migration string
		// admin runs as a superuser after migrating; %[1]s is the runtime role, %[2]s the
		// migration role (both quoted).
		admin   string
		posture func(p *database.Posture)
		want    []database.Violation // empty: accepted
	}{
		{
			name: "rule-abiding schema is accepted",
		},
		{
			name:      "RLS not enabled",
			migration: `ALTER TABLE items DISABLE ROW LEVEL SECURITY;`,
			want:      []database.Violation{{Object: "table apps.items", Rule: database.RuleRLSDisabled}},
		},
		{
			name:      "RLS not forced",
			migration: `ALTER TABLE items NO FORCE ROW LEVEL SECURITY;`,
			want:      []database.Violation{{Object: "table apps.items", Rule: database.RuleRLSNotForced}},
		},
		{
			name:      "no policy",
			migration: `DROP POLICY forge_owner ON items;`,
			want:      []database.Violation{{Object: "table apps.items", Rule: database.RuleNoOwnerPolicy}},
		},
		{
			name: "policy not on owner_id",
			migration: `DROP POLICY forge_owner ON items;
CREATE POLICY by_body ON items USING (body = current_setting('app.owner_id', true)) WITH CHECK (body = current_setting('app.owner_id', true));`,
			want: []database.Violation{
				{Object: "table apps.items", Rule: database.RuleNoOwnerPolicy},
				{Object: "table apps.items", Rule: database.RuleUndeclaredPolicy + ": by_body"},
			},
		},
		{
			name: "owner policy without nullif reads '' as an error, not as no owner",
			migration: `DROP POLICY forge_owner ON items;
CREATE POLICY forge_owner ON items USING (owner_id = current_setting('app.owner_id')::uuid) WITH CHECK (owner_id = current_setting('app.owner_id')::uuid);`,
			want: []database.Violation{{Object: "table apps.items", Rule: database.RuleNoOwnerPolicy}},
		},
		{
			name:      "owner policy restricted to SELECT",
			migration: `DROP POLICY forge_owner ON items; CREATE POLICY forge_owner ON items FOR SELECT USING (owner_id = (select nullif(current_setting('app.owner_id', true), '')::uuid));`,
			want:      []database.Violation{{Object: "table apps.items", Rule: database.RuleNoOwnerPolicy}},
		},
		{
			name:      "undeclared extra policy",
			migration: `CREATE POLICY anyone ON items FOR SELECT USING (true);`,
			want:      []database.Violation{{Object: "table apps.items", Rule: database.RuleUndeclaredPolicy + ": anyone"}},
		},
		{
			name:    "declared policy undeclared",
			posture: func(p *database.Posture) { p.ExtraPolicies = nil },
			want:    []database.Violation{{Object: "table apps.listings", Rule: database.RuleUndeclaredPolicy + ": public_read"}},
		},
		{
			name: "nullable owner_id",
			migration: `CREATE TABLE notes (id uuid PRIMARY KEY, owner_id uuid NOT NULL);
CREATE INDEX notes_owner ON notes (owner_id, id);
CALL forge_tenant_table('notes');
ALTER TABLE notes ALTER owner_id DROP NOT NULL;`,
			want: []database.Violation{{Object: "table apps.notes", Rule: database.RuleOwnerNullable}},
		},
		{
			name: "no owner_id column",
			migration: `CREATE TABLE settings (id int PRIMARY KEY);
ALTER TABLE settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE settings FORCE ROW LEVEL SECURITY;`,
			want: []database.Violation{
				{Object: "table apps.settings", Rule: database.RuleNoOwnerColumn},
				{Object: "table apps.settings", Rule: database.RuleNoOwnerPolicy},
				{Object: "table apps.settings", Rule: database.RuleNoImmutability},
				{Object: "table apps.settings", Rule: database.RuleNoOwnerIndex},
			},
		},
		{
			name:      "no immutability trigger",
			migration: `DROP TRIGGER forge_owner_id_immutable ON items;`,
			want:      []database.Violation{{Object: "table apps.items", Rule: database.RuleNoImmutability}},
		},
		{
			name:      "immutability trigger disabled",
			migration: `ALTER TABLE items DISABLE TRIGGER forge_owner_id_immutable;`,
			want:      []database.Violation{{Object: "table apps.items", Rule: database.RuleNoImmutability}},
		},
		{
			name: "no index leading with owner_id",
			migration: `CREATE TABLE loose (id bigint PRIMARY KEY, owner_id uuid NOT NULL);
CREATE INDEX loose_id_owner ON loose (id, owner_id);
ALTER TABLE loose ENABLE ROW LEVEL SECURITY;
ALTER TABLE loose FORCE ROW LEVEL SECURITY;
CREATE POLICY forge_owner ON loose USING (owner_id = (select nullif(current_setting('app.owner_id', true), '')::uuid))
    WITH CHECK (owner_id = (select nullif(current_setting('app.owner_id', true), '')::uuid));
CREATE TRIGGER forge_owner_id_immutable AFTER UPDATE ON loose FOR EACH ROW EXECUTE FUNCTION forge_owner_id_immutable();`,
			want: []database.Violation{{Object: "table apps.loose", Rule: database.RuleNoOwnerIndex}},
		},
		{
			name:  "runtime role owns a table",
			admin: `ALTER TABLE apps.items OWNER TO %[1]s`,
			want:  []database.Violation{{Object: "table apps.items", Rule: database.RuleOwnedByRuntime}},
		},
		{
			name:  "runtime role owns the schema",
			admin: `ALTER SCHEMA apps OWNER TO %[1]s`,
			want:  []database.Violation{{Object: "schema apps", Rule: database.RuleOwnedByRuntime}},
		},
		{
			name:  "runtime role is a member of the owner",
			admin: `GRANT %[2]s TO %[1]s`,
			want: []database.Violation{
				{Object: "table apps.items", Rule: database.RuleOwnedByRuntime},
				{Object: "function apps.purge_owner(uuid)", Rule: database.RuleOwnedByRuntime},
				{Object: "schema apps", Rule: database.RuleOwnedByRuntime},
			},
		},
		{
			name:  "runtime role has BYPASSRLS",
			admin: `ALTER ROLE %[1]s BYPASSRLS`,
			want:  []database.Violation{{Rule: database.RuleBypassRLS}},
		},
		{
			name:  "runtime role is a superuser",
			admin: `ALTER ROLE %[1]s SUPERUSER`,
			want:  []database.Violation{{Rule: database.RuleSuperuser}},
		},
		{
			name:  "TRUNCATE granted",
			admin: `GRANT TRUNCATE ON apps.items TO %[1]s`,
			want:  []database.Violation{{Object: "table apps.items", Rule: database.RuleTablePrivilege + ": TRUNCATE"}},
		},
		{
			name:  "REFERENCES granted",
			admin: `GRANT REFERENCES ON apps.listings TO %[1]s`,
			want:  []database.Violation{{Object: "table apps.listings", Rule: database.RuleTablePrivilege + ": REFERENCES"}},
		},
		{
			name:  "TRIGGER granted",
			admin: `GRANT TRIGGER ON apps.item_bodies TO %[1]s`,
			want:  []database.Violation{{Object: "view apps.item_bodies", Rule: database.RuleTablePrivilege + ": TRIGGER"}},
		},
		{
			name:      "view not security_invoker",
			migration: `CREATE VIEW all_items AS SELECT * FROM items;`,
			want:      []database.Violation{{Object: "view apps.all_items", Rule: database.RuleViewNotInvoker}},
		},
		{
			name:      "materialized view",
			migration: `CREATE MATERIALIZED VIEW item_counts AS SELECT owner_id, count(*) FROM items GROUP BY owner_id;`,
			want:      []database.Violation{{Object: "materialized view apps.item_counts", Rule: database.RuleMaterializedView}},
		},
		{
			name: "SECURITY DEFINER function not on the allowlist",
			migration: `CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
AS 'SELECT count(*) FROM apps.items';`,
			want: []database.Violation{{Object: "function apps.peek()", Rule: database.RuleUnlistedDefiner}},
		},
		{
			name:    "allowlist emptied",
			posture: func(p *database.Posture) { p.DefinerFunctions = nil },
			want:    []database.Violation{{Object: "function apps.purge_owner(uuid)", Rule: database.RuleUnlistedDefiner}},
		},
		{
			name:      "SECURITY DEFINER function without a fixed search_path",
			migration: `ALTER FUNCTION purge_owner(uuid) RESET search_path;`,
			want:      []database.Violation{{Object: "function apps.purge_owner(uuid)", Rule: database.RuleDefinerSearchPath}},
		},
		{
			name:      "SECURITY DEFINER function executable by PUBLIC",
			migration: `GRANT EXECUTE ON FUNCTION purge_owner(uuid) TO PUBLIC;`,
			want:      []database.Violation{{Object: "function apps.purge_owner(uuid)", Rule: database.RuleDefinerPublic}},
		},
		{
			name:  "app.owner_id set by a role default",
			admin: `ALTER ROLE %[1]s SET app.owner_id = '0b0f6a35-6d1f-4c43-9f0f-3f4d2c1b0a99'`,
			want:  []database.Violation{{Rule: database.RuleSessionOwner}},
		},
		{
			name:  "runtime role can read the migrations bookkeeping",
			admin: `GRANT USAGE ON SCHEMA apps_migrations TO %[1]s`,
			want:  []database.Violation{{Object: "schema apps_migrations", Rule: database.RuleBookkeepingVisible}},
		},
		{
			name: "every violation is reported at once",
			migration: `ALTER TABLE items DISABLE ROW LEVEL SECURITY;
CREATE VIEW all_items AS SELECT * FROM items;
CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT 1::bigint';`,
			admin: `GRANT TRUNCATE ON apps.listings TO %[1]s`,
			want: []database.Violation{
				{Object: "table apps.items", Rule: database.RuleRLSDisabled},
				{Object: "view apps.all_items", Rule: database.RuleViewNotInvoker},
				{Object: "function apps.peek()", Rule: database.RuleUnlistedDefiner},
				{Object: "function apps.peek()", Rule: database.RuleDefinerSearchPath},
				{Object: "table apps.listings", Rule: database.RuleTablePrivilege + ": TRUNCATE"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"00001_schema.sql": postureMigration}
			if tt.migration != "" {
				files["00002_change.sql"] = "-- +goose Up\n-- +goose StatementBegin\n" + tt.migration + "\n-- +goose StatementEnd\n"
			}
			env := pgtest.New(t, pgtest.Spec{Schema: "apps", Sources: []database.Source{sqlSource("svc", files)}})
			if tt.admin != "" {
				env.ExecAdmin(t, fmt.Sprintf(tt.admin,
					pgx.Identifier{env.Names.RuntimeRole}.Sanitize(), pgx.Identifier{env.Names.MigrationRole}.Sanitize()))
			}
			posture := acceptedPosture
			if tt.posture != nil {
				tt.posture(&posture)
			}

			err := database.CheckPosture(t.Context(), env.DB, posture)

			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			var perr *database.PostureError
			require.True(t, errors.As(err, &perr), "want a *PostureError, got %v", err)
			for _, w := range tt.want {
				if w.Object == "" {
					w.Object = "role " + env.Names.RuntimeRole
				}
				require.True(t, hasViolation(perr.Violations, w), "missing %q in:\n%v", w.String(), err)
				require.Contains(t, err.Error(), w.Object, "the error names the object")
			}
		})
	}
}

// hasViolation reports a violation of the object whose rule starts with w's rule (the rule
// may carry a detail, such as the owner's name).
func hasViolation(vs []database.Violation, w database.Violation) bool {
	for _, v := range vs {
		if v.Object == w.Object && strings.HasPrefix(v.Rule, w.Rule) {
			return true
		}
	}
	return false
}

func TestTenantTableProcedureRefusesIncompleteTables(t *testing.T) {
	tests := []struct {
		name    string
		table   string
		wantErr string
	}{
		{
			name:    "nullable owner_id",
			table:   `CREATE TABLE t (owner_id uuid, id int, PRIMARY KEY (id)); CREATE INDEX ON t (owner_id);`,
			wantErr: "owner_id uuid NOT NULL",
		},
		{
			name:    "owner_id of another type",
			table:   `CREATE TABLE t (owner_id text NOT NULL, id int, PRIMARY KEY (owner_id, id));`,
			wantErr: "owner_id uuid NOT NULL",
		},
		{
			name:    "no index leading with owner_id",
			table:   `CREATE TABLE t (owner_id uuid NOT NULL, id int PRIMARY KEY);`,
			wantErr: "leading with owner_id",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := pgtest.New(t, pgtest.Spec{Schema: "apps"})
			_, err := env.Migrator.Exec(t.Context(), tt.table+` CALL forge_tenant_table('t');`)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
