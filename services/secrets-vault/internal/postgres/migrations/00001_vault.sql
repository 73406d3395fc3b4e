-- secrets-vault's schema: the key hierarchy, app secrets and the audit trail. Applied after the
-- platform and events sources, as the migration role, with search_path set to the schema.

-- +goose Up

-- keyrings is each tenant's key policy: which version encrypts, which is the oldest that still
-- decrypts. After a shred the row is the tombstone: shredded_at and what was destroyed, no key
-- material, and it is final (trigger below; the runtime role may not DELETE it), so a later
-- first use can never create a fresh key for a purged tenant.
CREATE TABLE keyrings (
    owner_id            uuid        NOT NULL,
    current_version     integer     NOT NULL,
    min_decrypt_version integer     NOT NULL,
    shredded_at         timestamptz,
    versions_destroyed  integer[]   NOT NULL DEFAULT '{}',
    secrets_deleted     bigint      NOT NULL DEFAULT 0,
    rows_deleted        bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id),
    CHECK (shredded_at IS NOT NULL
        OR (current_version >= 1 AND min_decrypt_version >= 1 AND min_decrypt_version <= current_version))
);
CALL forge_tenant_table('keyrings');

-- +goose StatementBegin
CREATE FUNCTION keyrings_tombstone_final() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF OLD.shredded_at IS NOT NULL AND (
        NEW.shredded_at IS DISTINCT FROM OLD.shredded_at
        OR NEW.current_version <> OLD.current_version
        OR NEW.min_decrypt_version <> OLD.min_decrypt_version) THEN
        RAISE EXCEPTION 'the keyring of a shredded tenant is final' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER keyrings_tombstone_final BEFORE UPDATE ON keyrings
    FOR EACH ROW EXECUTE FUNCTION keyrings_tombstone_final();

-- tenant_keys holds every data key version, wrapped by the region's root key (kek_id names
-- it) with associated data binding owner and version. This is the only table with key
-- material: database dumps exclude its data (pg_dump --exclude-table-data), and the vault's
-- keyring backups are the only backup of it, so shredding reaches every copy.
CREATE TABLE tenant_keys (
    owner_id   uuid        NOT NULL,
    version    integer     NOT NULL CHECK (version >= 1),
    kek_id     text        NOT NULL CHECK (kek_id <> ''),
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (owner_id, version),
    FOREIGN KEY (owner_id) REFERENCES keyrings (owner_id)
);
CALL forge_tenant_table('tenant_keys');

-- No key version is ever added to a shredded tenant, whatever the code does.
-- +goose StatementBegin
CREATE FUNCTION tenant_keys_not_shredded() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM keyrings k WHERE k.owner_id = NEW.owner_id AND k.shredded_at IS NOT NULL) THEN
        RAISE EXCEPTION 'the tenant''s keys were destroyed' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION tenant_keys_not_shredded() SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd
CREATE TRIGGER tenant_keys_not_shredded BEFORE INSERT ON tenant_keys
    FOR EACH ROW EXECUTE FUNCTION tenant_keys_not_shredded();

-- registered_apps lists the apps each owner has (apps calls RegisterApp / UnregisterApp): the
-- vault talks to no service, so this is how it knows an app is the owner's.
CREATE TABLE registered_apps (
    owner_id      uuid        NOT NULL,
    app_id        uuid        NOT NULL,
    registered_at timestamptz NOT NULL,
    PRIMARY KEY (owner_id, app_id)
);
CALL forge_tenant_table('registered_apps');

-- secrets are app secrets: the value sealed under the tenant's key (bound to owner, app and
-- name), where it may be sent and how.
CREATE TABLE secrets (
    owner_id       uuid        NOT NULL,
    app_id         uuid        NOT NULL,
    name           text        NOT NULL CHECK (name ~ '^[A-Za-z][A-Za-z0-9_-]{0,63}$'),
    ciphertext     bytea       NOT NULL,
    key_version    integer     NOT NULL CHECK (key_version >= 1),
    upstream_host  text        NOT NULL CHECK (upstream_host <> ''),
    injection_kind smallint    NOT NULL CHECK (injection_kind IN (1, 2)),
    header_name    text        NOT NULL DEFAULT '',
    prefix         text        NOT NULL DEFAULT '',
    query_param    text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    rotated_at     timestamptz NOT NULL,
    PRIMARY KEY (owner_id, app_id, name),
    FOREIGN KEY (owner_id, app_id) REFERENCES registered_apps (owner_id, app_id) ON DELETE CASCADE
);
CALL forge_tenant_table('secrets');
-- The rewrap job finds secrets under old key versions.
CREATE INDEX secrets_key_version_idx ON secrets (owner_id, key_version);

-- audit_log records every key use and secret access: who (workload; the owner is owner_id),
-- what (secret name or key versions), when, why (purpose). Never a value. Append-only for the
-- runtime role (UPDATE and DELETE revoked below); a purged tenant's entries go only through
-- audit_purge.
CREATE TABLE audit_log (
    owner_id uuid        NOT NULL,
    id       uuid        NOT NULL,
    at       timestamptz NOT NULL,
    workload text        NOT NULL,
    action   text        NOT NULL,
    subject  text        NOT NULL,
    purpose  text        NOT NULL,
    items    integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (owner_id, id)
);
CALL forge_tenant_table('audit_log');

-- The runtime role may not rewrite history: no UPDATE or DELETE of audit entries, no DELETE of
-- a keyring (the tombstone), no UPDATE of a wrapped key. Default privileges granted them when
-- the tables were created; the runtime role's name is not known here, so every grantee other
-- than the owner loses them.
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname, a.grantee::regrole AS grantee,
               CASE c.relname WHEN 'audit_log' THEN 'UPDATE, DELETE'
                              WHEN 'keyrings' THEN 'DELETE'
                              WHEN 'tenant_keys' THEN 'UPDATE' END AS privs
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relname IN ('audit_log', 'keyrings', 'tenant_keys')
          AND a.grantee <> 0 AND a.grantee <> c.relowner
        GROUP BY c.relname, a.grantee
    LOOP
        EXECUTE format('REVOKE %s ON TABLE %I FROM %s', r.privs, r.relname, r.grantee);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- The two reviewed cross-tenant paths (SECURITY DEFINER, owned by the migration role).
--
-- rewrap_stale_owners returns owner IDs only (nothing else of any tenant): those not shredded
-- with secrets sealed under a key version older than their current one, for the rewrap job,
-- which then works inside each owner's own transaction.
-- +goose StatementBegin
CREATE FUNCTION rewrap_stale_owners(p_limit integer) RETURNS SETOF uuid
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    SELECT k.owner_id FROM keyrings k
    WHERE k.shredded_at IS NULL
      AND EXISTS (SELECT 1 FROM secrets s WHERE s.owner_id = k.owner_id AND s.key_version < k.current_version)
    ORDER BY k.owner_id
    LIMIT least(greatest(p_limit, 1), 1000)
$$;
-- +goose StatementEnd

-- audit_purge deletes up to p_limit audit entries of one tenant, and only of the tenant the
-- calling transaction acts for, and only once that tenant is shredded: the purge, nothing else.
-- +goose StatementBegin
CREATE FUNCTION audit_purge(p_owner uuid, p_limit integer) RETURNS integer
LANGUAGE sql
VOLATILE
SECURITY DEFINER
AS $$
    WITH doomed AS (
        SELECT a.id FROM audit_log a
        WHERE a.owner_id = p_owner
          AND p_owner = nullif(current_setting('app.owner_id', true), '')::uuid
          AND EXISTS (SELECT 1 FROM keyrings k WHERE k.owner_id = p_owner AND k.shredded_at IS NOT NULL)
        LIMIT least(greatest(p_limit, 1), 5000)
    ), gone AS (
        DELETE FROM audit_log a USING doomed d WHERE a.owner_id = p_owner AND a.id = d.id RETURNING 1
    )
    SELECT count(*)::integer FROM gone
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION rewrap_stale_owners(integer) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION audit_purge(uuid, integer) SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION rewrap_stale_owners(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_purge(uuid, integer) FROM PUBLIC;

-- +goose Down
DROP FUNCTION audit_purge(uuid, integer);
DROP FUNCTION rewrap_stale_owners(integer);
DROP TABLE audit_log;
DROP TABLE secrets;
DROP TABLE registered_apps;
DROP TRIGGER tenant_keys_not_shredded ON tenant_keys;
DROP FUNCTION tenant_keys_not_shredded();
DROP TABLE tenant_keys;
DROP TRIGGER keyrings_tombstone_final ON keyrings;
DROP TABLE keyrings;
DROP FUNCTION keyrings_tombstone_final();
