-- The sandbox origin's tables. Every one is a tenant table (owner_id leads its key, RLS forced
-- by forge_tenant_table), and every query also filters on owner_id.

-- +goose Up

-- view_tickets holds the one-time tickets the console exchanges at an app's origin, only as
-- hashes. owner_id is the owner of the app: the origin that redeems a ticket knows that owner
-- (from the app it serves), so redemption needs no cross-tenant path. Redemption deletes the
-- row, so a ticket works once on every replica.
CREATE TABLE view_tickets (
    owner_id    uuid        NOT NULL,
    ticket_hash bytea       NOT NULL CHECK (octet_length(ticket_hash) = 32),
    app_id      uuid        NOT NULL,
    viewer_id   uuid        NOT NULL,
    expire_time timestamptz NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, ticket_hash)
);
CREATE INDEX view_tickets_expire_idx ON view_tickets (owner_id, expire_time);
CALL forge_tenant_table('view_tickets');

-- owner_status is the account status tenant announced (tenant.account.status_changed): an
-- owner whose account is being deleted has none of its apps served. status_time orders the
-- announcements, so a late redelivery of an older one changes nothing.
CREATE TABLE owner_status (
    owner_id    uuid        NOT NULL PRIMARY KEY,
    status      text        NOT NULL CHECK (status IN ('active', 'deletion_pending', 'purged')),
    status_time timestamptz NOT NULL
);
CALL forge_tenant_table('owner_status');

-- proxy_calls audits the secret proxy: who called which secret of which app, where it went
-- and what came back. Never the value.
CREATE TABLE proxy_calls (
    owner_id       uuid        NOT NULL,
    id             uuid        NOT NULL,
    app_id         uuid        NOT NULL,
    secret_name    text        NOT NULL,
    upstream_host  text        NOT NULL,
    method         text        NOT NULL,
    caller         text        NOT NULL,
    status         integer     NOT NULL,
    outcome        text        NOT NULL,
    request_bytes  bigint      NOT NULL,
    response_bytes bigint      NOT NULL,
    duration_ms    integer     NOT NULL,
    call_time      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, id)
);
CREATE INDEX proxy_calls_app_idx ON proxy_calls (owner_id, app_id, call_time);
CALL forge_tenant_table('proxy_calls');

-- +goose Down
DROP TABLE proxy_calls;
DROP TABLE owner_status;
DROP TABLE view_tickets;
