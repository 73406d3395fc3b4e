package database

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Posture says what CheckPosture holds a service schema to, beyond the rules every schema
// follows.
type Posture struct {
	// Schema is the service schema.
	Schema string
	// DefinerFunctions names the reviewed SECURITY DEFINER functions of the schema: the narrow
	// cross-tenant paths. Any other SECURITY DEFINER function is refused.
	DefinerFunctions []string
	// ExtraPolicies declares reviewed policies beyond the owner policy (for example a Discover
	// listings table readable by anyone). A declared table still needs everything else.
	ExtraPolicies []TablePolicy
}

// TablePolicy names one policy of one table of the schema.
type TablePolicy struct {
	Table  string
	Policy string
}

// Violation is one broken rule: the object (a role, a table, a view, a function) and the rule.
type Violation struct {
	Object string
	Rule   string
}

func (v Violation) String() string { return v.Object + ": " + v.Rule }

// PostureError lists every violation CheckPosture found.
type PostureError struct {
	Schema     string
	Violations []Violation
}

func (e *PostureError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "database: schema %s breaks %d storage rule(s):", e.Schema, len(e.Violations))
	for _, v := range e.Violations {
		b.WriteString("\n  - ")
		b.WriteString(v.String())
	}
	return b.String()
}

// The rules, as CheckPosture words them.
const (
	RuleSuperuser          = "the runtime role is a superuser"
	RuleBypassRLS          = "the runtime role has BYPASSRLS"
	RulePrivilegedMember   = "the runtime role is a member of a superuser or BYPASSRLS role"
	RuleOwnedByRuntime     = "owned by the runtime role (or a role it is a member of)"
	RuleTablePrivilege     = "the runtime role holds a privilege it must never have"
	RuleSessionOwner       = "a role or database default sets app.owner_id for every session"
	RuleBookkeepingVisible = "the runtime role has USAGE on the migrations bookkeeping schema"
	RuleRLSDisabled        = "row level security is not enabled"
	RuleRLSNotForced       = "row level security is not forced"
	RuleNoOwnerPolicy      = "no owner policy (permissive, FOR ALL, USING and WITH CHECK comparing owner_id to app.owner_id)"
	RuleUndeclaredPolicy   = "a policy other than the owner policy that the posture does not declare"
	RuleNoOwnerColumn      = "no column owner_id"
	RuleOwnerNotUUID       = "owner_id is not uuid"
	RuleOwnerNullable      = "owner_id is nullable"
	RuleNoImmutability     = "no enabled owner_id immutability trigger (CALL forge_tenant_table)"
	RuleNoOwnerIndex       = "no index leads with owner_id"
	RuleViewNotInvoker     = "view is not security_invoker"
	RuleMaterializedView   = "materialized views hold rows without row level security"
	RuleUnlistedDefiner    = "SECURITY DEFINER function not on the reviewed allowlist"
	RuleDefinerSearchPath  = "SECURITY DEFINER function without a fixed search_path"
	RuleDefinerPublic      = "SECURITY DEFINER function executable by PUBLIC"
)

// ownerPolicyExpr is how PostgreSQL prints the owner policy's expression (whitespace aside).
const ownerPolicyExpr = `(owner_id = ( SELECT (NULLIF(current_setting('app.owner_id'::text, true), ''::text))::uuid AS "nullif"))`

// CheckPosture verifies, from the catalog and as the runtime pool's own role, every storage
// rule of the design for the service schema, and returns all violations at once as a
// *PostureError. Services call it at start and refuse to start on error.
//
// The runtime role must not be a superuser, have BYPASSRLS, be a member of a role that is or
// has either, own (itself or through a role it is a member of) the schema or anything in it,
// hold TRUNCATE, REFERENCES or TRIGGER on any of its tables, or have USAGE on the migrations
// bookkeeping schema; no role or database default may set app.owner_id. Every table needs RLS
// enabled and forced, the owner policy, no undeclared other policy, owner_id uuid NOT NULL,
// the enabled immutability trigger and a valid, non-partial index leading with owner_id.
// Views must be security_invoker; materialized views are refused. SECURITY DEFINER functions
// must be on the allowlist, have a fixed search_path and not be executable by PUBLIC.
func CheckPosture(ctx context.Context, db *DB, p Posture) error {
	if err := validSchema(p.Schema); err != nil {
		return err
	}
	c := &postureCheck{p: p}
	steps := []func(context.Context, *DB) error{c.role, c.ownership, c.privileges, c.tables, c.policies, c.views, c.functions}
	for _, step := range steps {
		if err := step(ctx, db); err != nil {
			return fmt.Errorf("database: posture: %w", err)
		}
	}
	if len(c.violations) == 0 {
		return nil
	}
	return &PostureError{Schema: p.Schema, Violations: c.violations}
}

type postureCheck struct {
	p          Posture
	violations []Violation
}

func (c *postureCheck) add(object, rule string) {
	c.violations = append(c.violations, Violation{Object: object, Rule: rule})
}

func (c *postureCheck) qualified(kind, name string) string {
	return kind + " " + c.p.Schema + "." + name
}

func (c *postureCheck) role(ctx context.Context, db *DB) error {
	var (
		name                      string
		super, bypass             bool
		privileged                []string
		sessionOwner, seeBookkeep bool
	)
	err := db.pool.QueryRow(ctx, `
		select r.rolname, r.rolsuper, r.rolbypassrls,
			array(select o.rolname from pg_roles o
				where o.oid <> r.oid and (o.rolsuper or o.rolbypassrls)
				  and pg_has_role(r.oid, o.oid, 'MEMBER') order by 1),
			exists(select 1 from pg_db_role_setting s
				where s.setrole in (0, r.oid)
				  and s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
				  and exists(select 1 from unnest(s.setconfig) c where c like 'app.owner\_id=%')),
			coalesce((select has_schema_privilege(r.oid, n.oid, 'USAGE') from pg_namespace n where n.nspname = $1), false)
		from pg_roles r where r.rolname = current_user`,
		MigrationsSchema(c.p.Schema)).Scan(&name, &super, &bypass, &privileged, &sessionOwner, &seeBookkeep)
	if err != nil {
		return fmt.Errorf("runtime role: %w", err)
	}
	object := "role " + name
	if super {
		c.add(object, RuleSuperuser)
	}
	if bypass {
		c.add(object, RuleBypassRLS)
	}
	for _, r := range privileged {
		c.add(object, RulePrivilegedMember+" ("+r+")")
	}
	if sessionOwner {
		c.add(object, RuleSessionOwner)
	}
	if seeBookkeep {
		c.add("schema "+MigrationsSchema(c.p.Schema), RuleBookkeepingVisible)
	}
	return nil
}

func (c *postureCheck) ownership(ctx context.Context, db *DB) error {
	rows, err := db.pool.Query(ctx, `
		with s as (select oid, nspname, nspowner from pg_namespace where nspname = $1)
		select 'schema', s.nspname, pg_get_userbyid(s.nspowner) from s
			where pg_has_role(current_user, s.nspowner, 'MEMBER')
		union all
		select case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
				when 'S' then 'sequence' when 'c' then 'type' when 'i' then 'index' when 'I' then 'index' else 'table' end,
			s.nspname || '.' || c.relname, pg_get_userbyid(c.relowner)
			from pg_class c join s on c.relnamespace = s.oid
			where pg_has_role(current_user, c.relowner, 'MEMBER')
		union all
		select case p.prokind when 'p' then 'procedure' else 'function' end,
			s.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')',
			pg_get_userbyid(p.proowner)
			from pg_proc p join s on p.pronamespace = s.oid
			where pg_has_role(current_user, p.proowner, 'MEMBER')
		union all
		select 'type', s.nspname || '.' || t.typname, pg_get_userbyid(t.typowner)
			from pg_type t join s on t.typnamespace = s.oid
			where t.typtype in ('c', 'd', 'e', 'r', 'm') and t.typrelid = 0
			  and pg_has_role(current_user, t.typowner, 'MEMBER')
		order by 1, 2`, c.p.Schema)
	if err != nil {
		return fmt.Errorf("ownership: %w", err)
	}
	var kind, name, by string
	_, err = pgx.ForEachRow(rows, []any{&kind, &name, &by}, func() error {
		c.add(kind+" "+name, RuleOwnedByRuntime+": owner "+by)
		return nil
	})
	if err != nil {
		return fmt.Errorf("ownership: %w", err)
	}
	return nil
}

func (c *postureCheck) privileges(ctx context.Context, db *DB) error {
	rows, err := db.pool.Query(ctx, `
		select case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
				when 'f' then 'foreign table' else 'table' end,
			c.relname, p.priv
		from pg_class c
		join pg_namespace n on n.oid = c.relnamespace
		cross join unnest(array['TRUNCATE', 'REFERENCES', 'TRIGGER']) as p(priv)
		where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'f')
		  and has_table_privilege(current_user, c.oid, p.priv)
		order by 2, 3`, c.p.Schema)
	if err != nil {
		return fmt.Errorf("privileges: %w", err)
	}
	var kind, table, priv string
	_, err = pgx.ForEachRow(rows, []any{&kind, &table, &priv}, func() error {
		c.add(c.qualified(kind, table), RuleTablePrivilege+": "+priv)
		return nil
	})
	if err != nil {
		return fmt.Errorf("privileges: %w", err)
	}
	return nil
}

func (c *postureCheck) tables(ctx context.Context, db *DB) error {
	rows, err := db.pool.Query(ctx, `
		select c.relname, c.relrowsecurity, c.relforcerowsecurity,
			a.attnum is not null, coalesce(a.atttypid = 'uuid'::regtype, false), coalesce(a.attnotnull, false),
			exists(select 1 from pg_trigger t join pg_proc f on f.oid = t.tgfoid
				where t.tgrelid = c.oid and f.proname = $2 and f.pronamespace = n.oid
				  and t.tgenabled in ('O', 'A') and t.tgqual is null and t.tgattr = ''::int2vector
				  and (t.tgtype & 1) = 1    -- FOR EACH ROW
				  and (t.tgtype & 16) = 16  -- UPDATE
			),
			exists(select 1 from pg_index i
				where i.indrelid = c.oid and a.attnum is not null and i.indkey[0] = a.attnum
				  and i.indisvalid and i.indpred is null)
		from pg_class c
		join pg_namespace n on n.oid = c.relnamespace
		left join pg_attribute a on a.attrelid = c.oid and a.attname = 'owner_id' and not a.attisdropped
		where n.nspname = $1 and c.relkind in ('r', 'p')
		order by 1`, c.p.Schema, immutableTriggerFn)
	if err != nil {
		return fmt.Errorf("tables: %w", err)
	}
	var (
		table                                     string
		enabled, forced, hasOwner, isUUID, notNil bool
		immutable, indexed                        bool
	)
	_, err = pgx.ForEachRow(rows, []any{&table, &enabled, &forced, &hasOwner, &isUUID, &notNil, &immutable, &indexed}, func() error {
		object := c.qualified("table", table)
		if !enabled {
			c.add(object, RuleRLSDisabled)
		}
		if !forced {
			c.add(object, RuleRLSNotForced)
		}
		switch {
		case !hasOwner:
			c.add(object, RuleNoOwnerColumn)
		case !isUUID:
			c.add(object, RuleOwnerNotUUID)
		case !notNil:
			c.add(object, RuleOwnerNullable)
		}
		if !immutable {
			c.add(object, RuleNoImmutability)
		}
		if !indexed {
			c.add(object, RuleNoOwnerIndex)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tables: %w", err)
	}
	return nil
}

func (c *postureCheck) policies(ctx context.Context, db *DB) error {
	// Every table, with its policies (none: one row of nulls).
	rows, err := db.pool.Query(ctx, `
		select c.relname, p.polname, p.polpermissive, p.polcmd::text,
			coalesce(p.polroles = '{0}'::oid[] or (select oid from pg_roles where rolname = current_user) = any(p.polroles), false),
			pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
		from pg_class c
		join pg_namespace n on n.oid = c.relnamespace
		left join pg_policy p on p.polrelid = c.oid
		where n.nspname = $1 and c.relkind in ('r', 'p')
		order by 1, 2`, c.p.Schema)
	if err != nil {
		return fmt.Errorf("policies: %w", err)
	}
	var (
		table              string
		policy, cmd        *string
		permissive, forRT  *bool
		using, check       *string
		hasOwner           = map[string]bool{}
		tables             []string
		undeclaredByTable  = map[string][]string{}
		normalizedExpected = normalizeExpr(ownerPolicyExpr)
	)
	_, err = pgx.ForEachRow(rows, []any{&table, &policy, &permissive, &cmd, &forRT, &using, &check}, func() error {
		if len(tables) == 0 || tables[len(tables)-1] != table {
			tables = append(tables, table)
		}
		if policy == nil {
			return nil
		}
		isOwner := *permissive && *cmd == "*" && *forRT &&
			using != nil && normalizeExpr(*using) == normalizedExpected &&
			check != nil && normalizeExpr(*check) == normalizedExpected
		if isOwner {
			hasOwner[table] = true
			return nil
		}
		if !slices.Contains(c.p.ExtraPolicies, TablePolicy{Table: table, Policy: *policy}) {
			undeclaredByTable[table] = append(undeclaredByTable[table], *policy)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("policies: %w", err)
	}
	for _, t := range tables {
		object := c.qualified("table", t)
		if !hasOwner[t] {
			c.add(object, RuleNoOwnerPolicy)
		}
		for _, p := range undeclaredByTable[t] {
			c.add(object, RuleUndeclaredPolicy+": "+p)
		}
	}
	return nil
}

// normalizeExpr drops whitespace, so that line breaks in a future deparse do not matter.
func normalizeExpr(s string) string {
	return strings.Join(strings.Fields(s), "")
}

func (c *postureCheck) views(ctx context.Context, db *DB) error {
	rows, err := db.pool.Query(ctx, `
		select c.relname, c.relkind = 'm', coalesce(c.reloptions, '{}')
		from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where n.nspname = $1 and c.relkind in ('v', 'm')
		order by 1`, c.p.Schema)
	if err != nil {
		return fmt.Errorf("views: %w", err)
	}
	var (
		view    string
		matview bool
		options []string
	)
	_, err = pgx.ForEachRow(rows, []any{&view, &matview, &options}, func() error {
		if matview {
			c.add(c.qualified("materialized view", view), RuleMaterializedView)
			return nil
		}
		if !securityInvoker(options) {
			c.add(c.qualified("view", view), RuleViewNotInvoker)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("views: %w", err)
	}
	return nil
}

func securityInvoker(reloptions []string) bool {
	for _, o := range reloptions {
		k, v, _ := strings.Cut(o, "=")
		if strings.EqualFold(k, "security_invoker") {
			switch strings.ToLower(v) {
			case "true", "on", "yes", "1", "t", "y":
				return true
			}
		}
	}
	return false
}

func (c *postureCheck) functions(ctx context.Context, db *DB) error {
	rows, err := db.pool.Query(ctx, `
		select p.proname, p.proname || '(' || oidvectortypes(p.proargtypes) || ')',
			exists(select 1 from unnest(coalesce(p.proconfig, '{}')) s where s like 'search\_path=%'),
			p.proacl is null or exists(select 1 from aclexplode(p.proacl) a where a.grantee = 0 and a.privilege_type = 'EXECUTE')
		from pg_proc p join pg_namespace n on n.oid = p.pronamespace
		where n.nspname = $1 and p.prosecdef
		order by 2`, c.p.Schema)
	if err != nil {
		return fmt.Errorf("functions: %w", err)
	}
	var (
		name, signature       string
		fixedPath, publicExec bool
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &signature, &fixedPath, &publicExec}, func() error {
		object := c.qualified("function", signature)
		if !slices.Contains(c.p.DefinerFunctions, name) {
			c.add(object, RuleUnlistedDefiner)
		}
		if !fixedPath {
			c.add(object, RuleDefinerSearchPath)
		}
		if publicExec {
			c.add(object, RuleDefinerPublic)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("functions: %w", err)
	}
	return nil
}
