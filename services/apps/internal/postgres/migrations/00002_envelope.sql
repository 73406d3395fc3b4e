-- Envelope encryption of file contents. Version files and reference contents are sealed by
-- apps itself (AES-256-GCM) under a fresh data key per object that secrets-vault issued; the
-- key is kept here only as the vault wrapped it under the owner's key (key_version), bound to
-- the owner, object and field. Only the vault opens it, so a shred of the owner's keys leaves
-- every such object unreadable, in object storage and in every backup.
--
-- Nothing is migrated: rows written before this change (none exist in production) keep an
-- empty key and no longer open. The default only fills those rows; every insert names a key.

-- +goose Up
ALTER TABLE version_files ADD COLUMN wrapped_key bytea NOT NULL DEFAULT '\x';
ALTER TABLE version_files ALTER COLUMN wrapped_key DROP DEFAULT;
ALTER TABLE app_references ADD COLUMN wrapped_key bytea NOT NULL DEFAULT '\x';
ALTER TABLE app_references ALTER COLUMN wrapped_key DROP DEFAULT;

-- +goose Down
ALTER TABLE app_references DROP COLUMN wrapped_key;
ALTER TABLE version_files DROP COLUMN wrapped_key;
