-- The tenant service's schema: accounts, the identities that sign in to them, sessions, the
-- credit ledger and the region directory. Applied by database.Migrate as the migration role,
-- after the platform and events sources, with search_path set to the service schema: nothing
-- here names a schema. Every table is a tenant table (owner_id leads the primary key and every
-- foreign key; CALL forge_tenant_table forces RLS and the owner policy).

-- +goose Up

-- accounts: one row per tenant homed in this region. 'purged' is never stored: the purge
-- removes the row (what a deletion certificate needs lives in data-lifecycle).
CREATE TABLE accounts (
    owner_id           uuid        NOT NULL,
    email              text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    display_name       text        NOT NULL DEFAULT '' CHECK (length(display_name) <= 100),
    notification_email text        NOT NULL DEFAULT '' CHECK (length(notification_email) <= 254),
    plan               text        NOT NULL CHECK (plan IN ('free', 'pro', 'studio')),
    home_region        text        NOT NULL CHECK (home_region IN ('us-east', 'eu-west')),
    status             text        NOT NULL CHECK (status IN ('active', 'deletion_pending')),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (owner_id),
    -- The sovereignty rule, held by the database as well as the code.
    CONSTRAINT accounts_eu_west_is_studio CHECK (home_region <> 'eu-west' OR plan = 'studio')
);
-- ResolveEmail: the oldest active tenant with an email, case-insensitively.
CREATE INDEX accounts_active_email_idx ON accounts (lower(email), created_at, owner_id) WHERE status = 'active';
CALL forge_tenant_table('accounts');

-- identities: the (issuer, subject) pairs that sign in to a tenant. The unique index across
-- tenants is what makes a concurrent first sign-in of one person create one tenant.
CREATE TABLE identities (
    owner_id   uuid        NOT NULL,
    issuer     text        NOT NULL CHECK (length(issuer) BETWEEN 1 AND 512),
    subject    text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (owner_id, issuer, subject),
    FOREIGN KEY (owner_id) REFERENCES accounts (owner_id)
);
CREATE UNIQUE INDEX identities_issuer_subject_key ON identities (issuer, subject);
CALL forge_tenant_table('identities');

-- sessions: only the SHA-256 of a token is stored, never the token.
CREATE TABLE sessions (
    owner_id   uuid        NOT NULL,
    id         uuid        NOT NULL,
    token_hash bytea       NOT NULL CHECK (length(token_hash) = 32),
    user_agent text        NOT NULL DEFAULT '' CHECK (length(user_agent) <= 512),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL CHECK (expires_at > created_at),
    revoked_at timestamptz,
    PRIMARY KEY (owner_id, id),
    FOREIGN KEY (owner_id) REFERENCES accounts (owner_id)
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_live_idx ON sessions (owner_id, expires_at) WHERE revoked_at IS NULL;
CALL forge_tenant_table('sessions');

-- credit_balances: the balance and the ledger's last sequence number. Its row is the lock
-- that serialises one tenant's ledger writes; the CHECK is the net under the code's own test.
CREATE TABLE credit_balances (
    owner_id   uuid        NOT NULL,
    balance    bigint      NOT NULL DEFAULT 0 CHECK (balance >= 0),
    last_seq   bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (owner_id),
    FOREIGN KEY (owner_id) REFERENCES accounts (owner_id)
);
CALL forge_tenant_table('credit_balances');

-- credit_entries: the ledger, append-only. seq is assigned under the balance row's lock, so
-- it grows in commit order and pages by seq are stable.
CREATE TABLE credit_entries (
    owner_id        uuid        NOT NULL,
    id              uuid        NOT NULL,
    seq             bigint      NOT NULL CHECK (seq > 0),
    amount          bigint      NOT NULL CHECK (amount <> 0),
    reason          text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    idempotency_key text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    balance_after   bigint      NOT NULL CHECK (balance_after >= 0),
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (owner_id, id),
    CONSTRAINT credit_entries_seq_key UNIQUE (owner_id, seq),
    CONSTRAINT credit_entries_idempotency_key UNIQUE (owner_id, idempotency_key),
    FOREIGN KEY (owner_id) REFERENCES credit_balances (owner_id)
);
CALL forge_tenant_table('credit_entries');

-- region_directory: owner_id -> home region, nothing else, so that it can be shared with the
-- edge and (in a later issue) with other regions without carrying anything personal. No
-- foreign key: it will also list tenants homed in other regions.
CREATE TABLE region_directory (
    owner_id    uuid NOT NULL,
    home_region text NOT NULL CHECK (home_region IN ('us-east', 'eu-west')),
    PRIMARY KEY (owner_id)
);
CALL forge_tenant_table('region_directory');

-- The reviewed narrow paths across tenants. Sign-in and authentication happen before any
-- owner is known, and RLS rightly shows the runtime role nothing then. Each function runs as
-- its owner (the migration role), takes exactly the key it needs and returns only the owner
-- (and, for a session, its ID and expiry): never a wider policy on the tables.

-- identity_owner: the tenant an (issuer, subject) signs in to, or NULL.
-- +goose StatementBegin
CREATE FUNCTION identity_owner(p_issuer text, p_subject text) RETURNS uuid
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    SELECT i.owner_id FROM identities i WHERE i.issuer = p_issuer AND i.subject = p_subject
$$;
-- +goose StatementEnd

-- session_authenticate: the live session with a token hash, or no row. The caller's clock
-- can only make a session end earlier than the database's, never revive an expired one.
-- +goose StatementBegin
CREATE FUNCTION session_authenticate(p_token_hash bytea, p_at timestamptz)
RETURNS TABLE (owner_id uuid, session_id uuid, expires_at timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    SELECT s.owner_id, s.id, s.expires_at
    FROM sessions s
    WHERE s.token_hash = p_token_hash
      AND s.revoked_at IS NULL
      AND s.expires_at > greatest(p_at, now())
$$;
-- +goose StatementEnd

-- account_resolve_email: the oldest active tenant that signed up with an email, or NULL.
-- +goose StatementBegin
CREATE FUNCTION account_resolve_email(p_email text) RETURNS uuid
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    SELECT a.owner_id
    FROM accounts a
    WHERE lower(a.email) = lower(p_email) AND a.status = 'active'
    ORDER BY lower(a.email), a.created_at, a.owner_id
    LIMIT 1
$$;
-- +goose StatementEnd

-- Pin every definer function's search_path to this schema (known only at migration time).
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION identity_owner(text, text) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION session_authenticate(bytea, timestamptz) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION account_resolve_email(text) SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd

-- EXECUTE goes to the runtime role alone (database.Migrate's default privileges); never PUBLIC.
REVOKE ALL ON FUNCTION identity_owner(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION session_authenticate(bytea, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION account_resolve_email(text) FROM PUBLIC;

-- +goose Down
DROP FUNCTION account_resolve_email(text);
DROP FUNCTION session_authenticate(bytea, timestamptz);
DROP FUNCTION identity_owner(text, text);
DROP TABLE region_directory;
DROP TABLE credit_entries;
DROP TABLE credit_balances;
DROP TABLE sessions;
DROP TABLE identities;
DROP TABLE accounts;
