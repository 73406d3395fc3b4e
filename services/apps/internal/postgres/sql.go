package postgres

// Every statement names owner_id = $1 itself: RLS is the net under the code, not the only
// filter. The statements on the reviewed paths say so.

const appColumns = `a.owner_id, a.id, a.name, a.description, a.key_version, a.visibility, a.current_version,
	a.prompt_seq, a.created_at, a.updated_at,
	exists(select 1 from listings l where l.owner_id = a.owner_id and l.app_id = a.id)`

// sqlResolve: whether the caller is disabled, and the caller's own app (under RLS) or else
// the reviewed collaborator path; always one row (owner_id null when neither).
const sqlResolve = `
	select r.owner_id, r.role,
		exists(select 1 from owner_state s where s.owner_id = $1 and s.disabled_at is not null)
	from (select 1) one
	left join lateral (
		select a.owner_id, 1::smallint as role from apps a where a.owner_id = $1 and a.id = $2
		union all
		select c.owner_id, c.role from collaborator_access($1, $2) c
		limit 1
	) r on true`

const sqlSharedApps = `select owner_id, app_id, role, collab_id, created_at from shared_apps($1, $2, $3, $4)`

const sqlAppOwner = `select app_owner($1)`

const sqlShareLinkOwner = `select owner_id, expires_at from share_link_owner($1, $2)`

// The listing reads run with no owner set: only the public read policy lets rows through.
const (
	sqlListings = `
		select owner_id, id, app_id, name, description, version, published_at from listings
		where $1::timestamptz is null or (published_at, id) < ($1, $2::uuid)
		order by published_at desc, id desc limit $3`
	sqlListing = `
		select owner_id, id, app_id, name, description, version, published_at from listings where id = $1`
	sqlListingFiles = `
		select listing_id, path, content_type, size_bytes, object_key from listing_files
		where listing_id = any($1::uuid[]) order by listing_id, path`
)

const sqlPurgePromptReads = `select purge_prompt_reads($1, $2)`

const (
	sqlInsertApp = `
		insert into apps (owner_id, id, name, description, key_version, visibility, current_version, created_at, updated_at)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	sqlApp          = `select ` + appColumns + ` from apps a where a.owner_id = $1 and a.id = $2`
	sqlAppForUpdate = sqlApp + ` for update of a`
	sqlApps         = `select ` + appColumns + ` from apps a where a.owner_id = $1
		order by a.created_at desc, a.id desc limit $2`
	sqlAppsAfter = `select ` + appColumns + ` from apps a where a.owner_id = $1 and (a.created_at, a.id) < ($2, $3)
		order by a.created_at desc, a.id desc limit $4`
	sqlAppsByID  = `select ` + appColumns + ` from apps a where a.owner_id = $1 and a.id = any($2::uuid[])`
	sqlUpdateApp = `
		update apps set name = $3, description = $4, key_version = $5, visibility = $6, current_version = $7, updated_at = $8
		where owner_id = $1 and id = $2`
	sqlDeleteApp     = `delete from apps where owner_id = $1 and id = $2`
	sqlNextPromptSeq = `update apps set prompt_seq = prompt_seq + 1 where owner_id = $1 and id = $2 returning prompt_seq`
)

const (
	sqlInsertPrompt = `
		insert into prompts (owner_id, id, app_id, seq, kind, author, text, key_version, created_at)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	promptColumns = `id, app_id, seq, kind, author, text, key_version, created_at`
	sqlPrompts    = `select ` + promptColumns + ` from prompts where owner_id = $1 and app_id = $2 and seq > $3
		order by seq limit $4`
	sqlAllPrompts       = `select ` + promptColumns + ` from prompts where owner_id = $1 and app_id = $2 order by seq`
	sqlInsertPromptRead = `
		insert into prompt_reads (owner_id, id, app_id, purpose, reader_owner_id, workload, prompt_count, created_at)
		values ($1, $2, $3, $4, $5, $6, $7, $8)`
	sqlPromptReads = `
		select id, app_id, purpose, reader_owner_id, workload, prompt_count, created_at from prompt_reads
		where owner_id = $1 and app_id = $2 and ($3::timestamptz is null or (created_at, id) < ($3, $4::uuid))
		order by created_at desc, id desc limit $5`
)

const (
	sqlInsertReference = `
		insert into app_references (owner_id, id, app_id, meta, content_type, size_bytes, object_key, wrapped_key, key_version, created_at)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	referenceColumns = `id, app_id, meta, content_type, size_bytes, object_key, wrapped_key, key_version, created_at`
	sqlReferences    = `select ` + referenceColumns + ` from app_references where owner_id = $1 and app_id = $2
		order by created_at, id`
	sqlReference       = `select ` + referenceColumns + ` from app_references where owner_id = $1 and app_id = $2 and id = $3`
	sqlDeleteReference = `delete from app_references where owner_id = $1 and app_id = $2 and id = $3`
	sqlCountReferences = `select count(*) from app_references where owner_id = $1 and app_id = $2`
)

const (
	sqlInsertVersion = `
		insert into versions (owner_id, app_id, version, author, created_at) values ($1, $2, $3, $4, $5)`
	sqlInsertVersionFile = `
		insert into version_files (owner_id, app_id, version, path, content_type, size_bytes, object_key, wrapped_key, key_version)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	sqlVersions = `
		select v.version, v.author, v.created_at, f.path, f.content_type, f.size_bytes
		from versions v
		left join version_files f on f.owner_id = v.owner_id and f.app_id = v.app_id and f.version = v.version
		where v.owner_id = $1 and v.app_id = $2
		order by v.version, f.path`
	fileColumns    = `path, content_type, size_bytes, object_key, wrapped_key, key_version`
	sqlVersionFile = `select ` + fileColumns + ` from version_files
		where owner_id = $1 and app_id = $2 and version = $3 and path = $4`
	sqlVersionFiles = `select ` + fileColumns + ` from version_files
		where owner_id = $1 and app_id = $2 and version = $3 order by path`
)

const (
	sqlInsertShareLink = `
		insert into share_links (owner_id, id, app_id, token_hash, created_at, expires_at) values ($1, $2, $3, $4, $5, $6)`
	sqlShareLinks = `
		select id, app_id, created_at, expires_at from share_links
		where owner_id = $1 and app_id = $2 and revoked_at is null and expires_at > $3 order by created_at, id`
	sqlRevokeShareLink = `
		update share_links set revoked_at = $4
		where owner_id = $1 and app_id = $2 and id = $3 and revoked_at is null`
	sqlHasLiveShareLink = `
		select exists(select 1 from share_links
			where owner_id = $1 and app_id = $2 and revoked_at is null and expires_at > $3)`
)

const (
	sqlInsertCollaborator = `
		insert into collaborators (owner_id, id, app_id, collaborator_owner_id, email, key_version, role, created_at)
		values ($1, $2, $3, $4, $5, $6, $7, $8)
		on conflict (owner_id, app_id, collaborator_owner_id) do nothing`
	sqlCollaborators = `
		select id, app_id, collaborator_owner_id, email, key_version, role, created_at from collaborators
		where owner_id = $1 and app_id = $2 order by created_at, id`
	sqlDeleteCollaborator = `delete from collaborators where owner_id = $1 and app_id = $2 and id = $3`
)

const (
	sqlListingID     = `select id from listings where owner_id = $1 and app_id = $2`
	sqlInsertListing = `
		insert into listings (owner_id, id, app_id, name, description, version, published_at)
		values ($1, $2, $3, $4, $5, $6, $7)`
	sqlInsertListingFile = `
		insert into listing_files (owner_id, listing_id, path, content_type, size_bytes, object_key)
		values ($1, $2, $3, $4, $5, $6)`
	// The files' keys are read from the snapshot before the delete cascades to them.
	sqlDeleteListing = `
		with f as (select listing_id, object_key from listing_files where owner_id = $1),
		d as (delete from listings where owner_id = $1 and app_id = $2 returning id)
		select f.object_key from d left join f on f.listing_id = d.id`
	sqlDeleteListings = `
		with f as (select listing_id, object_key from listing_files where owner_id = $1),
		d as (delete from listings where owner_id = $1 returning id)
		select d.id, f.object_key from d left join f on f.listing_id = d.id`
)

const (
	sqlHolds = `
		select exists(select 1 from apps where owner_id = $1)
			or exists(select 1 from prompt_reads where owner_id = $1)
			or exists(select 1 from inbox where owner_id = $1)
			or exists(select 1 from event_dead_letters where owner_id = $1)`
	sqlDisabled = `select exists(select 1 from owner_state where owner_id = $1 and disabled_at is not null)`
	sqlDisable  = `
		insert into owner_state (owner_id, disabled_at) values ($1, $2)
		on conflict (owner_id) do update set disabled_at = coalesce(owner_state.disabled_at, excluded.disabled_at)`
	sqlDeleteShareLinks = `
		with d as (delete from share_links where owner_id = $1 returning revoked_at, expires_at)
		select count(*) filter (where revoked_at is null and expires_at > $2)::int from d`
	sqlMakePrivate = `update apps set visibility = 1, updated_at = $2 where owner_id = $1 and visibility > 1`
	sqlRestore     = `delete from owner_state where owner_id = $1`
	// sqlPurgeTableFmt deletes one bounded batch of a table (names from purgeOrder only).
	sqlPurgeTableFmt = `delete from %s where owner_id = $1 and ctid in
		(select ctid from %s where owner_id = $1 limit greatest($2, 0))`
	sqlPromptReadsLeft = `select exists(select 1 from prompt_reads where owner_id = $1)`
	sqlPurgeOwnerState = `delete from owner_state where owner_id = $1`
)
