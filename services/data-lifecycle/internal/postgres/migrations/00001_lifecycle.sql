-- data-lifecycle's schema: export jobs and their download links, deletions (the durable
-- schedule, the receipt, the certificate and the deletion ledger) and what each store reported
-- for a purge. Applied after the platform and events sources, as the migration role, with
-- search_path set to the schema.

-- +goose Up

-- exports are the export jobs. object_key names the sealed archive in object storage once
-- ready; attempt is part of the key, so a retried job never writes over another attempt's
-- object while it may still be running.
CREATE TABLE exports (
    owner_id         uuid        NOT NULL,
    id               uuid        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('pending', 'running', 'ready', 'failed', 'cancelled', 'expired')),
    progress_percent integer     NOT NULL DEFAULT 0 CHECK (progress_percent BETWEEN 0 AND 100),
    attempt          integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    size_bytes       bigint      NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    object_key       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    ready_at         timestamptz,
    expire_at        timestamptz,
    PRIMARY KEY (owner_id, id),
    CHECK (state <> 'ready' OR (object_key IS NOT NULL AND ready_at IS NOT NULL AND expire_at IS NOT NULL))
);
CALL forge_tenant_table('exports');
-- One export at a time per tenant, held by the database, not only the code.
CREATE UNIQUE INDEX exports_one_active ON exports (owner_id) WHERE state IN ('pending', 'running');
-- The sweeper finds ready archives past their expiry.
CREATE INDEX exports_expiry ON exports (expire_at) WHERE state = 'ready';

-- export_links are single-use, short-lived download links; only the token's SHA-256 is kept.
CREATE TABLE export_links (
    owner_id   uuid        NOT NULL,
    export_id  uuid        NOT NULL,
    token_hash bytea       NOT NULL CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    expire_at  timestamptz NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (owner_id, export_id, token_hash),
    FOREIGN KEY (owner_id, export_id) REFERENCES exports (owner_id, id) ON DELETE CASCADE
);
CALL forge_tenant_table('export_links');

-- deletions are account deletions. purge_due_at is the durable schedule (30 days after the
-- request, fixed then: a clock moved backwards never makes it earlier). disabled_at is set
-- once every disable step is applied downstream; restored_at once a cancelled deletion's
-- account is active again: until then the reconciler keeps retrying. The receipt's SHA-256
-- lets the requester read progress and the certificate after the account is gone. Rows of
-- completed deletions are the deletion ledger: the owner ID is kept so that a purge can be
-- replayed after a backup is restored (a hash could not say what to delete).
CREATE TABLE deletions (
    owner_id          uuid        NOT NULL,
    id                uuid        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('pending', 'cancelled', 'purging', 'completed')),
    home_region       text        NOT NULL,
    receipt_hash      bytea       NOT NULL CHECK (length(receipt_hash) = 32),
    requested_at      timestamptz NOT NULL,
    purge_due_at      timestamptz NOT NULL,
    disabled_at       timestamptz,
    cancelled_at      timestamptz,
    restored_at       timestamptz,
    purge_started_at  timestamptz,
    purge_attempts    integer     NOT NULL DEFAULT 0,
    last_attempt_at   timestamptz,
    completed_at      timestamptz,
    cert_payload      bytea,
    cert_signature    bytea,
    cert_key_id       text,
    PRIMARY KEY (owner_id, id),
    CHECK (purge_due_at > requested_at),
    CHECK (state <> 'completed' OR (completed_at IS NOT NULL AND cert_payload IS NOT NULL AND cert_signature IS NOT NULL))
);
CALL forge_tenant_table('deletions');
CREATE UNIQUE INDEX deletions_receipt ON deletions (receipt_hash);
-- One open deletion per tenant.
CREATE UNIQUE INDEX deletions_one_open ON deletions (owner_id) WHERE state IN ('pending', 'purging');
CREATE INDEX deletions_due ON deletions (purge_due_at) WHERE state = 'pending';
CREATE INDEX deletions_purging ON deletions (last_attempt_at) WHERE state = 'purging';
CREATE INDEX deletions_completed ON deletions (completed_at) WHERE state = 'completed';

-- purge_stores records, per purge, every store of the registry and what it reported.
CREATE TABLE purge_stores (
    owner_id               uuid        NOT NULL,
    deletion_id            uuid        NOT NULL,
    store                  text        NOT NULL CHECK (store <> ''),
    done_at                timestamptz,
    rows_deleted           bigint      NOT NULL DEFAULT 0,
    objects_deleted        bigint      NOT NULL DEFAULT 0,
    key_versions_destroyed integer[]   NOT NULL DEFAULT '{}',
    PRIMARY KEY (owner_id, deletion_id, store),
    FOREIGN KEY (owner_id, deletion_id) REFERENCES deletions (owner_id, id)
);
CALL forge_tenant_table('purge_stores');

-- The reviewed cross-tenant paths (SECURITY DEFINER, owned by the migration role). Each
-- returns owner and row IDs only; the work on each row then happens inside that owner's own
-- transaction, under RLS.
--
-- deletions_due lists pending deletions due at p_now (the service's clock, not now(): time is
-- injected so tests can move it). The claim itself is the owner transaction's conditional
-- UPDATE, so two replicas listing the same row claim it once.
-- +goose StatementBegin
CREATE FUNCTION deletions_due(p_now timestamptz, p_limit integer)
RETURNS TABLE (owner_id uuid, id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
AS $$
    SELECT d.owner_id, d.id FROM deletions d
    WHERE d.state = 'pending' AND d.purge_due_at <= p_now
    ORDER BY d.purge_due_at
    LIMIT least(greatest(p_limit, 1), 1000)
$$;
-- +goose StatementEnd

-- deletions_to_reconcile lists deletions whose downstream effects are not applied yet: a
-- pending deletion not yet disabled everywhere, a cancelled one not yet restored, a purge
-- not fanned out again since p_stale_before (retried, never forgotten).
-- +goose StatementBegin
CREATE FUNCTION deletions_to_reconcile(p_stale_before timestamptz, p_limit integer)
RETURNS TABLE (owner_id uuid, id uuid, state text)
LANGUAGE sql STABLE SECURITY DEFINER
AS $$
    SELECT d.owner_id, d.id, d.state FROM deletions d
    WHERE (d.state = 'pending' AND d.disabled_at IS NULL)
       OR (d.state = 'cancelled' AND d.restored_at IS NULL)
       OR (d.state = 'purging' AND d.last_attempt_at < p_stale_before)
    ORDER BY d.requested_at
    LIMIT least(greatest(p_limit, 1), 1000)
$$;
-- +goose StatementEnd

-- deletion_by_receipt finds the deletion a receipt token (by its hash) belongs to.
-- +goose StatementBegin
CREATE FUNCTION deletion_by_receipt(p_hash bytea)
RETURNS TABLE (owner_id uuid, id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
AS $$
    SELECT d.owner_id, d.id FROM deletions d WHERE d.receipt_hash = p_hash
$$;
-- +goose StatementEnd

-- exports_expired lists ready archives past their expiry at p_now.
-- +goose StatementBegin
CREATE FUNCTION exports_expired(p_now timestamptz, p_limit integer)
RETURNS TABLE (owner_id uuid, id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
AS $$
    SELECT e.owner_id, e.id FROM exports e
    WHERE e.state = 'ready' AND e.expire_at <= p_now
    ORDER BY e.expire_at
    LIMIT least(greatest(p_limit, 1), 1000)
$$;
-- +goose StatementEnd

-- deletion_ledger lists completed purges since p_after: after a backup is restored, each is
-- purged again (the restored rows predate the purge).
-- +goose StatementBegin
CREATE FUNCTION deletion_ledger(p_after timestamptz)
RETURNS TABLE (owner_id uuid, id uuid, completed_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
AS $$
    SELECT d.owner_id, d.id, d.completed_at FROM deletions d
    WHERE d.state = 'completed' AND d.completed_at >= p_after
    ORDER BY d.completed_at
$$;
-- +goose StatementEnd

-- purge_status counts purges by health for the metrics: purging, and purging past p_overdue.
-- +goose StatementBegin
CREATE FUNCTION purge_status(p_overdue timestamptz)
RETURNS TABLE (purging bigint, overdue bigint)
LANGUAGE sql STABLE SECURITY DEFINER
AS $$
    SELECT count(*), count(*) FILTER (WHERE d.purge_started_at < p_overdue)
    FROM deletions d WHERE d.state = 'purging'
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION deletions_due(timestamptz, integer) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION deletions_to_reconcile(timestamptz, integer) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION deletion_by_receipt(bytea) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION exports_expired(timestamptz, integer) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION deletion_ledger(timestamptz) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION purge_status(timestamptz) SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION deletions_due(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION deletions_to_reconcile(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION deletion_by_receipt(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION exports_expired(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION deletion_ledger(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION purge_status(timestamptz) FROM PUBLIC;

-- The deletion record is the receipt's and the ledger's: the runtime role never deletes it.
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname, a.grantee::regrole AS grantee
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relname IN ('deletions', 'purge_stores')
          AND a.grantee <> 0 AND a.grantee <> c.relowner AND a.privilege_type = 'DELETE'
    LOOP
        EXECUTE format('REVOKE DELETE ON TABLE %I FROM %s', r.relname, r.grantee);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION purge_status(timestamptz);
DROP FUNCTION deletion_ledger(timestamptz);
DROP FUNCTION exports_expired(timestamptz, integer);
DROP FUNCTION deletion_by_receipt(bytea);
DROP FUNCTION deletions_to_reconcile(timestamptz, integer);
DROP FUNCTION deletions_due(timestamptz, integer);
DROP TABLE purge_stores;
DROP TABLE deletions;
DROP TABLE export_links;
DROP TABLE exports;
