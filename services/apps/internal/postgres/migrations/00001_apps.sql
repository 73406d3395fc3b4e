-- The apps schema. Applied by database.Migrate after the platform and events sources, as the
-- migration role, with search_path set to the service schema (nothing here names a schema).
--
-- Every tenant-authored field (names, descriptions, prompt text, reference metadata,
-- collaborator emails) is a bytea ciphertext sealed by secrets-vault and bound to its owner,
-- object and field; file contents live in object storage, sealed the same way. Identifiers,
-- times, sizes and media types stay plain. The only plaintext copies of tenant content are
-- the Discover listings, which their owner published on purpose.

-- +goose Up

-- owner_state marks an owner disabled (deletion pending): the cross-tenant paths below stop
-- answering for such an owner at once.
CREATE TABLE owner_state (
    owner_id    uuid        NOT NULL PRIMARY KEY,
    disabled_at timestamptz
);
CALL forge_tenant_table('owner_state');

CREATE TABLE apps (
    owner_id        uuid        NOT NULL,
    id              uuid        NOT NULL,
    name            bytea       NOT NULL,
    description     bytea,
    key_version     bigint      NOT NULL CHECK (key_version > 0),
    visibility      smallint    NOT NULL DEFAULT 1 CHECK (visibility BETWEEN 1 AND 3),
    current_version integer     NOT NULL DEFAULT 0 CHECK (current_version >= 0),
    prompt_seq      bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (owner_id, id)
);
-- App IDs are random and generated here; the reviewed lookups by app ID alone use this.
CREATE UNIQUE INDEX apps_id_key ON apps (id);
CREATE INDEX apps_owner_created_idx ON apps (owner_id, created_at DESC, id DESC);
CALL forge_tenant_table('apps');

CREATE TABLE prompts (
    owner_id    uuid        NOT NULL,
    id          uuid        NOT NULL,
    app_id      uuid        NOT NULL,
    seq         bigint      NOT NULL CHECK (seq > 0),
    kind        smallint    NOT NULL CHECK (kind IN (1, 2)),
    author      text        NOT NULL CHECK (author IN ('owner', 'collaborator', 'builder')),
    text        bytea       NOT NULL,
    key_version bigint      NOT NULL CHECK (key_version > 0),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (owner_id, id),
    UNIQUE (owner_id, app_id, seq),
    FOREIGN KEY (owner_id, app_id) REFERENCES apps (owner_id, id) ON DELETE CASCADE
);
CALL forge_tenant_table('prompts');

-- prompt_reads audits every read of prompt text with its purpose. Append-only: the runtime
-- role may insert and read, never update or delete (the grants are revoked below); only the
-- reviewed purge_prompt_reads function deletes, and only for a disabled owner. It outlives the
-- app it is about, hence no foreign key.
CREATE TABLE prompt_reads (
    owner_id        uuid        NOT NULL,
    id              uuid        NOT NULL,
    app_id          uuid        NOT NULL,
    purpose         smallint    NOT NULL CHECK (purpose BETWEEN 1 AND 4),
    reader_owner_id uuid,
    workload        text        NOT NULL,
    prompt_count    integer     NOT NULL CHECK (prompt_count > 0),
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (owner_id, id)
);
CREATE INDEX prompt_reads_app_idx ON prompt_reads (owner_id, app_id, created_at DESC, id DESC);
CALL forge_tenant_table('prompt_reads');

CREATE TABLE app_references (
    owner_id     uuid        NOT NULL,
    id           uuid        NOT NULL,
    app_id       uuid        NOT NULL,
    meta         bytea       NOT NULL,
    content_type text        NOT NULL,
    size_bytes   bigint      NOT NULL CHECK (size_bytes > 0),
    object_key   text        NOT NULL,
    key_version  bigint      NOT NULL CHECK (key_version > 0),
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (owner_id, id),
    FOREIGN KEY (owner_id, app_id) REFERENCES apps (owner_id, id) ON DELETE CASCADE
);
CREATE INDEX app_references_app_idx ON app_references (owner_id, app_id, created_at);
CALL forge_tenant_table('app_references');

-- versions and version_files are immutable once written (a trigger refuses updates).
CREATE TABLE versions (
    owner_id   uuid        NOT NULL,
    app_id     uuid        NOT NULL,
    version    integer     NOT NULL CHECK (version > 0),
    author     text        NOT NULL CHECK (author IN ('owner', 'collaborator', 'builder')),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (owner_id, app_id, version),
    FOREIGN KEY (owner_id, app_id) REFERENCES apps (owner_id, id) ON DELETE CASCADE
);
CALL forge_tenant_table('versions');

CREATE TABLE version_files (
    owner_id     uuid    NOT NULL,
    app_id       uuid    NOT NULL,
    version      integer NOT NULL,
    path         text    NOT NULL,
    content_type text    NOT NULL,
    size_bytes   bigint  NOT NULL CHECK (size_bytes >= 0),
    object_key   text    NOT NULL,
    key_version  bigint  NOT NULL CHECK (key_version > 0),
    PRIMARY KEY (owner_id, app_id, version, path),
    FOREIGN KEY (owner_id, app_id, version) REFERENCES versions (owner_id, app_id, version) ON DELETE CASCADE
);
CALL forge_tenant_table('version_files');

-- +goose StatementBegin
CREATE FUNCTION apps_immutable_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    RAISE EXCEPTION '%.% rows are immutable', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER versions_immutable BEFORE UPDATE ON versions
    FOR EACH ROW EXECUTE FUNCTION apps_immutable_row();
CREATE TRIGGER version_files_immutable BEFORE UPDATE ON version_files
    FOR EACH ROW EXECUTE FUNCTION apps_immutable_row();
CREATE TRIGGER prompt_reads_immutable BEFORE UPDATE ON prompt_reads
    FOR EACH ROW EXECUTE FUNCTION apps_immutable_row();

-- share_links: only the SHA-256 of a token is stored.
CREATE TABLE share_links (
    owner_id   uuid        NOT NULL,
    id         uuid        NOT NULL,
    app_id     uuid        NOT NULL,
    token_hash bytea       NOT NULL CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    PRIMARY KEY (owner_id, id),
    FOREIGN KEY (owner_id, app_id) REFERENCES apps (owner_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX share_links_token_hash_key ON share_links (token_hash);
CREATE INDEX share_links_app_idx ON share_links (owner_id, app_id);
CALL forge_tenant_table('share_links');

-- collaborators: owned by the app's owner, like every other row of the app. The invited
-- tenant reads nothing here; collaborator_access answers for them.
CREATE TABLE collaborators (
    owner_id              uuid        NOT NULL,
    id                    uuid        NOT NULL,
    app_id                uuid        NOT NULL,
    collaborator_owner_id uuid        NOT NULL CHECK (collaborator_owner_id <> owner_id),
    email                 bytea       NOT NULL,
    key_version           bigint      NOT NULL CHECK (key_version > 0),
    role                  smallint    NOT NULL CHECK (role IN (2, 3)),
    created_at            timestamptz NOT NULL,
    PRIMARY KEY (owner_id, id),
    UNIQUE (owner_id, app_id, collaborator_owner_id),
    FOREIGN KEY (owner_id, app_id) REFERENCES apps (owner_id, id) ON DELETE CASCADE
);
CREATE INDEX collaborators_member_idx ON collaborators (collaborator_owner_id, created_at, id);
CALL forge_tenant_table('collaborators');

-- listings: the Discover copies, plaintext on purpose (the owner published them), public
-- fields only. Readable by anyone through the reviewed listings_public_read policy (declared
-- in the service's posture); written only by their owner under the owner policy.
CREATE TABLE listings (
    owner_id     uuid        NOT NULL,
    id           uuid        NOT NULL,
    app_id       uuid        NOT NULL,
    name         text        NOT NULL,
    description  text        NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    published_at timestamptz NOT NULL,
    PRIMARY KEY (owner_id, id),
    UNIQUE (owner_id, app_id),
    FOREIGN KEY (owner_id, app_id) REFERENCES apps (owner_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX listings_id_key ON listings (id);
CREATE INDEX listings_published_idx ON listings (published_at DESC, id DESC);
CALL forge_tenant_table('listings');
CREATE POLICY listings_public_read ON listings FOR SELECT USING (true);

CREATE TABLE listing_files (
    owner_id     uuid   NOT NULL,
    listing_id   uuid   NOT NULL,
    path         text   NOT NULL,
    content_type text   NOT NULL,
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    object_key   text   NOT NULL,
    PRIMARY KEY (owner_id, listing_id, path),
    FOREIGN KEY (owner_id, listing_id) REFERENCES listings (owner_id, id) ON DELETE CASCADE
);
CREATE INDEX listing_files_listing_idx ON listing_files (listing_id);
CALL forge_tenant_table('listing_files');
CREATE POLICY listing_files_public_read ON listing_files FOR SELECT USING (true);

-- The reviewed cross-tenant paths. Each runs as the migration role (the table owner, with
-- BYPASSRLS), answers one narrow question, and says nothing for a disabled owner.

-- collaborator_access: (viewer, app) -> (owner, role) when viewer collaborates on app and
-- neither of them is disabled.
-- +goose StatementBegin
CREATE FUNCTION collaborator_access(viewer uuid, app uuid)
RETURNS TABLE (owner_id uuid, role smallint)
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    SELECT c.owner_id, c.role
    FROM collaborators c
    WHERE c.collaborator_owner_id = viewer AND c.app_id = app
      AND NOT EXISTS (SELECT 1 FROM owner_state s
                      WHERE s.owner_id IN (c.owner_id, viewer) AND s.disabled_at IS NOT NULL)
$$;
-- +goose StatementEnd

-- shared_apps: the apps shared with viewer, a page at a time (keyset on the invitation).
-- +goose StatementBegin
CREATE FUNCTION shared_apps(viewer uuid, after_time timestamptz, after_id uuid, lim integer)
RETURNS TABLE (owner_id uuid, app_id uuid, role smallint, collab_id uuid, created_at timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    SELECT c.owner_id, c.app_id, c.role, c.id, c.created_at
    FROM collaborators c
    WHERE c.collaborator_owner_id = viewer
      AND (after_time IS NULL OR (c.created_at, c.id) > (after_time, after_id))
      AND NOT EXISTS (SELECT 1 FROM owner_state s
                      WHERE s.owner_id IN (c.owner_id, viewer) AND s.disabled_at IS NOT NULL)
    ORDER BY c.created_at, c.id
    LIMIT least(greatest(lim, 1), 101)
$$;
-- +goose StatementEnd

-- share_link_owner: (app, token hash) -> (owner, expiry) for a live link of an app that is
-- still link-shared or public.
-- +goose StatementBegin
CREATE FUNCTION share_link_owner(app uuid, hash bytea)
RETURNS TABLE (owner_id uuid, expires_at timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    SELECT l.owner_id, l.expires_at
    FROM share_links l
    JOIN apps a ON a.owner_id = l.owner_id AND a.id = l.app_id
    WHERE l.token_hash = hash AND l.app_id = app
      AND l.revoked_at IS NULL AND l.expires_at > now()
      AND a.visibility >= 2
      AND NOT EXISTS (SELECT 1 FROM owner_state s WHERE s.owner_id = l.owner_id AND s.disabled_at IS NOT NULL)
$$;
-- +goose StatementEnd

-- app_owner: app -> owner, for the sandbox origin (which then reads in the owner's
-- transaction).
-- +goose StatementBegin
CREATE FUNCTION app_owner(app uuid)
RETURNS uuid
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    SELECT a.owner_id
    FROM apps a
    WHERE a.id = app
      AND NOT EXISTS (SELECT 1 FROM owner_state s WHERE s.owner_id = a.owner_id AND s.disabled_at IS NOT NULL)
$$;
-- +goose StatementEnd

-- purge_prompt_reads: the one way audit rows are deleted, in bounded batches, and only for a
-- disabled owner (deletion pending), whose purge this is.
-- +goose StatementBegin
CREATE FUNCTION purge_prompt_reads(target uuid, lim integer)
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
AS $$
    WITH gone AS (
        DELETE FROM prompt_reads r
        WHERE r.owner_id = target
          AND r.id IN (SELECT x.id FROM prompt_reads x WHERE x.owner_id = target LIMIT greatest(lim, 0))
          AND EXISTS (SELECT 1 FROM owner_state s WHERE s.owner_id = target AND s.disabled_at IS NOT NULL)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
-- +goose StatementEnd

-- Pin each function's search_path to this schema (known only at migration time), keep
-- PUBLIC from executing them, and make prompt_reads append-only for every role but its owner.
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    EXECUTE format('ALTER FUNCTION collaborator_access(uuid, uuid) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION shared_apps(uuid, timestamptz, uuid, integer) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION share_link_owner(uuid, bytea) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION app_owner(uuid) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION purge_prompt_reads(uuid, integer) SET search_path = %I, pg_temp', current_schema());
    FOR r IN
        SELECT DISTINCT a.grantee::regrole AS grantee
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = 'prompt_reads'::regclass AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE ON prompt_reads FROM %s', r.grantee);
    END LOOP;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION collaborator_access(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION shared_apps(uuid, timestamptz, uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION share_link_owner(uuid, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_owner(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION purge_prompt_reads(uuid, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION apps_immutable_row() FROM PUBLIC;

-- +goose Down
DROP FUNCTION purge_prompt_reads(uuid, integer);
DROP FUNCTION app_owner(uuid);
DROP FUNCTION share_link_owner(uuid, bytea);
DROP FUNCTION shared_apps(uuid, timestamptz, uuid, integer);
DROP FUNCTION collaborator_access(uuid, uuid);
DROP TABLE listing_files;
DROP TABLE listings;
DROP TABLE collaborators;
DROP TABLE share_links;
DROP TABLE version_files;
DROP TABLE versions;
DROP FUNCTION apps_immutable_row();
DROP TABLE app_references;
DROP TABLE prompt_reads;
DROP TABLE prompts;
DROP TABLE apps;
DROP TABLE owner_state;
