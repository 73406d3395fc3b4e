-- The events source: the transactional outbox and the consumers' inbox, in the service schema.
-- Applied by database.Migrate after the platform source and before the service's own, as the
-- migration role (which owns every object and has BYPASSRLS), with search_path set to the
-- service schema: nothing here names a schema.

-- +goose Up

-- outbox holds events written in the same transaction as the state change they announce,
-- until the relay has published them (then it deletes them). id is the event ID and the
-- Nats-Msg-Id, so a republished row is deduplicated by JetStream.
CREATE TABLE outbox (
    owner_id   uuid        NOT NULL,
    id         uuid        NOT NULL,
    subject    text        NOT NULL CHECK (subject <> ''),
    payload    bytea       NOT NULL,
    -- trace context (traceparent, tracestate, baggage), Content-Type, Forge-Event-Type,
    -- Forge-Owner-Id: copied into the NATS message headers.
    headers    jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(headers) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, id)
);
-- The relay deletes by event ID across tenants, and an event ID is unique on its own.
CREATE UNIQUE INDEX outbox_id_key ON outbox (id);
-- The relay claims the oldest rows first.
CREATE INDEX outbox_created_at_idx ON outbox (created_at, id);
CALL forge_tenant_table('outbox');

-- inbox records which events a consumer has already applied, written in the same
-- transaction as the effect: handling an event twice has the effect of handling it once,
-- even after JetStream's duplicate window.
CREATE TABLE inbox (
    owner_id     uuid        NOT NULL,
    consumer     text        NOT NULL CHECK (consumer <> ''),
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, consumer, event_id)
);
CALL forge_tenant_table('inbox');

-- A committed insert wakes the relays of this schema at once (NOTIFY is delivered only on
-- commit, so a rolled-back event wakes nobody). The channel name is computed the same way by
-- the relay: 'forge_outbox.' || schema, cut to an identifier's 63 bytes.
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify(left('forge_outbox.' || TG_TABLE_SCHEMA, 63), '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- The relay's two narrow paths across tenants. RLS rightly hides every row from the runtime
-- role outside an owner transaction; these functions run as their owner, the migration role
-- (BYPASSRLS), and do exactly one thing each.
--
-- outbox_claim locks and returns up to batch of the oldest unpublished rows, leaving out the
-- rows listed in skip (rows this relay found it cannot publish, so they do not hold up the
-- rest). The locks last until the caller's transaction ends, and SKIP LOCKED makes
-- concurrent relays take disjoint rows, so two replicas never publish the same row at once.
-- +goose StatementBegin
CREATE FUNCTION outbox_claim(batch integer, skip uuid[])
RETURNS TABLE (id uuid, owner_id uuid, subject text, payload bytea, headers jsonb, created_at timestamptz)
LANGUAGE sql
VOLATILE
SECURITY DEFINER
AS $$
    SELECT o.id, o.owner_id, o.subject, o.payload, o.headers, o.created_at
    FROM outbox o
    WHERE o.id <> ALL (coalesce(skip, '{}'))
    ORDER BY o.created_at, o.id
    LIMIT least(greatest(batch, 1), 1000)
    FOR UPDATE SKIP LOCKED
$$;
-- +goose StatementEnd

-- outbox_delete removes rows the relay has published (JetStream acknowledged them).
-- +goose StatementBegin
CREATE FUNCTION outbox_delete(ids uuid[]) RETURNS integer
LANGUAGE sql
VOLATILE
SECURITY DEFINER
AS $$
    WITH gone AS (DELETE FROM outbox o WHERE o.id = ANY (ids) RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
-- +goose StatementEnd

-- A SECURITY DEFINER function must not resolve names through the caller's search_path: pin
-- it to this schema (pg_catalog is searched first implicitly; pg_temp goes last). The schema
-- is only known at migration time, hence the dynamic ALTER.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION outbox_claim(integer, uuid[]) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION outbox_delete(uuid[]) SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd

-- EXECUTE goes to the runtime role alone, through database.Migrate's default privileges;
-- PUBLIC never has it.
REVOKE ALL ON FUNCTION outbox_claim(integer, uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox_delete(uuid[]) FROM PUBLIC;

-- +goose Down
DROP FUNCTION outbox_delete(uuid[]);
DROP FUNCTION outbox_claim(integer, uuid[]);
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE inbox;
DROP TABLE outbox;
