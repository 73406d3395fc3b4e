-- The platform's share of every service schema: what makes a table a tenant table, so that
-- service migrations stay short and uniform. Applied by database.Migrate before any other
-- source, with search_path set to the service schema.

-- +goose Up

-- Refuses any change of owner_id. It runs AFTER the row is final, so no other trigger can
-- change owner_id behind it, and it binds every role, the BYPASSRLS migration role and
-- SECURITY DEFINER functions included (the owner policy's WITH CHECK already binds the
-- runtime role).
-- +goose StatementBegin
CREATE FUNCTION forge_owner_id_immutable() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF NEW.owner_id IS DISTINCT FROM OLD.owner_id THEN
        RAISE EXCEPTION 'owner_id of %.% is immutable', TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- forge_tenant_table makes a table a tenant table: it checks the table has owner_id uuid NOT
-- NULL and an index leading with owner_id, ENABLEs and FORCEs row-level security, creates the
-- owner policy and attaches the immutability trigger. Call it right after CREATE TABLE (with
-- its primary key), e.g. CALL forge_tenant_table('apps'). It is idempotent.
-- +goose StatementBegin
CREATE PROCEDURE forge_tenant_table(tbl regclass)
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    nsp name := (SELECT c.relnamespace::regnamespace::name FROM pg_class c WHERE c.oid = tbl);
    -- The policy text is the one the design asks for: after a transaction-local setting ends
    -- it reads as '' (hence nullif), and the scalar subquery is evaluated once per statement.
    owner_expr text := $e$owner_id = (select nullif(current_setting('app.owner_id', true), '')::uuid)$e$;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = tbl AND a.attname = 'owner_id' AND NOT a.attisdropped
          AND a.atttypid = 'uuid'::regtype AND a.attnotnull
    ) THEN
        RAISE EXCEPTION '%: a tenant table needs a column owner_id uuid NOT NULL', tbl;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = tbl AND a.attname = 'owner_id' AND i.indpred IS NULL
    ) THEN
        RAISE EXCEPTION '%: a tenant table needs an index (its primary key, usually) leading with owner_id', tbl;
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS forge_owner ON %s', tbl);
    EXECUTE format('CREATE POLICY forge_owner ON %s USING (%s) WITH CHECK (%s)', tbl, owner_expr, owner_expr);
    EXECUTE format('CREATE OR REPLACE TRIGGER forge_owner_id_immutable AFTER UPDATE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION %I.forge_owner_id_immutable()', tbl, nsp);
END
$$;
-- +goose StatementEnd

-- The forge_ routines are migration-time tools: the default privileges granted the runtime
-- role EXECUTE on them, which it needs for none (a trigger fires without it).
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT p.oid::regprocedure AS routine, a.grantee::regrole AS grantee
        FROM pg_proc p, aclexplode(p.proacl) a
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname LIKE 'forge\_%'
          AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('REVOKE ALL ON ROUTINE %s FROM %s', r.routine, r.grantee);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP PROCEDURE forge_tenant_table(regclass);
DROP FUNCTION forge_owner_id_immutable();
