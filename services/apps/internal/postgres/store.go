package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/fault"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

// Store implements apps.Store on pkg/database.
type Store struct {
	db     *database.DB
	outbox *events.Outbox
	region owner.Region
}

// NewStore returns the Store. outbox may be nil only in tests that emit no event.
func NewStore(db *database.DB, outbox *events.Outbox, region owner.Region) *Store {
	return &Store{db: db, outbox: outbox, region: region}
}

var _ apps.Store = (*Store)(nil)

// Tx runs fn in an owner transaction of o.
func (s *Store) Tx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx apps.StoreTx) error) error {
	return s.db.Tx(ctx, o, func(ctx context.Context, t database.Tx) error {
		return fn(ctx, &storeTx{tx: t, s: s})
	})
}

func notFound(what string) error { return fault.NotFound("%s not found", what) }

// Resolve reads the caller's own app under RLS, or else asks the reviewed collaborator path,
// in one round trip; it also reports whether the caller is disabled.
func (s *Store) Resolve(ctx context.Context, caller owner.ID, appID uuid.UUID) (owner.ID, apps.Role, bool, error) {
	var (
		o        *owner.ID
		role     *int16
		disabled bool
	)
	err := s.db.QueryRow(ctx, caller, sqlResolve, caller, appID).Scan(&o, &role, &disabled)
	if err != nil {
		return owner.ID{}, apps.RoleNone, false, fmt.Errorf("resolve app: %w", err)
	}
	if o == nil || role == nil {
		return owner.ID{}, apps.RoleNone, disabled, notFound("app")
	}
	return *o, apps.Role(*role), disabled, nil
}

// SharedWithMe pages through the apps shared with viewer.
func (s *Store) SharedWithMe(ctx context.Context, viewer owner.ID, after *apps.Cursor, limit int) ([]apps.SharedApp, error) {
	var (
		afterTime *time.Time
		afterID   *uuid.UUID
	)
	if after != nil {
		afterTime, afterID = &after.Time, &after.ID
	}
	var out []apps.SharedApp
	err := s.db.Tx(ctx, viewer, func(ctx context.Context, tx database.Tx) error {
		rows, err := tx.Query(ctx, sqlSharedApps, viewer, afterTime, afterID, limit)
		if err != nil {
			return err
		}
		var (
			sa   apps.SharedApp
			role int16
		)
		_, err = pgx.ForEachRow(rows, []any{&sa.Owner, &sa.AppID, &role, &sa.CollabID, &sa.CollabCreate}, func() error {
			sa.Role = apps.Role(role)
			out = append(out, sa)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shared apps: %w", err)
	}
	return out, nil
}

// AppOwner finds an app's owner through the reviewed app_owner path.
func (s *Store) AppOwner(ctx context.Context, appID uuid.UUID) (owner.ID, error) {
	var o *owner.ID
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, sqlAppOwner, appID).Scan(&o)
	})
	if err != nil {
		return owner.ID{}, fmt.Errorf("app owner: %w", err)
	}
	if o == nil || o.IsZero() {
		return owner.ID{}, notFound("app")
	}
	return *o, nil
}

// ShareLinkOwner finds a live link through the reviewed share_link_owner path.
func (s *Store) ShareLinkOwner(ctx context.Context, appID uuid.UUID, hash []byte) (owner.ID, time.Time, error) {
	var (
		o   owner.ID
		exp time.Time
	)
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, sqlShareLinkOwner, appID, hash).Scan(&o, &exp)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return owner.ID{}, time.Time{}, notFound("app")
	}
	if err != nil {
		return owner.ID{}, time.Time{}, fmt.Errorf("share link owner: %w", err)
	}
	return o, exp, nil
}

// Listings pages through Discover. It runs without an owner: only the listings' public read
// policy lets rows through.
func (s *Store) Listings(ctx context.Context, after *apps.Cursor, limit int) ([]apps.ListingRecord, error) {
	var out []apps.ListingRecord
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		var (
			afterTime *time.Time
			afterID   *uuid.UUID
		)
		if after != nil {
			afterTime, afterID = &after.Time, &after.ID
		}
		rows, err := tx.Query(ctx, sqlListings, afterTime, afterID, limit)
		if err != nil {
			return err
		}
		var l apps.ListingRecord
		_, err = pgx.ForEachRow(rows, []any{&l.Owner, &l.ID, &l.AppID, &l.Name, &l.Description, &l.Version, &l.Published}, func() error {
			out = append(out, l)
			return nil
		})
		if err != nil || len(out) == 0 {
			return err
		}
		ids := make([]string, len(out))
		for i, l := range out {
			ids[i] = l.ID.String()
		}
		files, err := listingFiles(ctx, tx, ids)
		if err != nil {
			return err
		}
		for i := range out {
			out[i].Files = files[out[i].ID]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listings: %w", err)
	}
	return out, nil
}

func listingFiles(ctx context.Context, tx database.Tx, ids []string) (map[uuid.UUID][]apps.ListingFile, error) {
	rows, err := tx.Query(ctx, sqlListingFiles, ids)
	if err != nil {
		return nil, err
	}
	out := map[uuid.UUID][]apps.ListingFile{}
	var (
		id uuid.UUID
		f  apps.ListingFile
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &f.Path, &f.ContentType, &f.Size, &f.ObjectKey}, func() error {
		out[id] = append(out[id], f)
		return nil
	})
	return out, err
}

// Listing reads one listing (public read policy).
func (s *Store) Listing(ctx context.Context, id uuid.UUID) (apps.ListingRecord, error) {
	var l apps.ListingRecord
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		err := tx.QueryRow(ctx, sqlListing, id).Scan(&l.Owner, &l.ID, &l.AppID, &l.Name, &l.Description, &l.Version, &l.Published)
		if err != nil {
			return err
		}
		files, err := listingFiles(ctx, tx, []string{id.String()})
		l.Files = files[id]
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return apps.ListingRecord{}, notFound("listing")
	}
	if err != nil {
		return apps.ListingRecord{}, fmt.Errorf("listing: %w", err)
	}
	return l, nil
}

// PurgePromptReads deletes audit rows of a disabled owner through the reviewed path.
func (s *Store) PurgePromptReads(ctx context.Context, o owner.ID, limit int) (int64, error) {
	var n int64
	err := s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, sqlPurgePromptReads, o, limit).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("purge prompt reads: %w", err)
	}
	return n, nil
}

// storeTx implements apps.StoreTx in one owner transaction.
type storeTx struct {
	tx database.Tx
	s  *Store
}

func (t *storeTx) Owner() owner.ID { return t.tx.Owner() }

func (t *storeTx) InsertApp(ctx context.Context, a apps.AppRecord) error {
	_, err := t.tx.Exec(ctx, sqlInsertApp, t.Owner(), a.ID, a.Name, a.Description, int64(a.KeyVersion),
		int16(a.Visibility), a.CurrentVersion, a.Created, a.Updated)
	if err != nil {
		return fmt.Errorf("insert app: %w", err)
	}
	return nil
}

func scanApp(row pgx.Row) (apps.AppRecord, error) {
	var (
		a   apps.AppRecord
		ver int64
		vis int16
	)
	err := row.Scan(&a.Owner, &a.ID, &a.Name, &a.Description, &ver, &vis, &a.CurrentVersion, &a.PromptSeq,
		&a.Created, &a.Updated, &a.Published)
	a.KeyVersion, a.Visibility = uint32(ver), apps.Visibility(vis)
	return a, err
}

func (t *storeTx) App(ctx context.Context, id uuid.UUID, lock bool) (apps.AppRecord, error) {
	q := sqlApp
	if lock {
		q = sqlAppForUpdate
	}
	a, err := scanApp(t.tx.QueryRow(ctx, q, t.Owner(), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return apps.AppRecord{}, notFound("app")
	}
	if err != nil {
		return apps.AppRecord{}, fmt.Errorf("app: %w", err)
	}
	return a, nil
}

func (t *storeTx) queryApps(ctx context.Context, q string, args ...any) ([]apps.AppRecord, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	defer rows.Close()
	var out []apps.AppRecord
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, fmt.Errorf("apps: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	return out, nil
}

func (t *storeTx) Apps(ctx context.Context, after *apps.Cursor, limit int) ([]apps.AppRecord, error) {
	if after == nil {
		return t.queryApps(ctx, sqlApps, t.Owner(), limit)
	}
	return t.queryApps(ctx, sqlAppsAfter, t.Owner(), after.Time, after.ID, limit)
}

func (t *storeTx) AppsByID(ctx context.Context, ids []uuid.UUID) ([]apps.AppRecord, error) {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return t.queryApps(ctx, sqlAppsByID, t.Owner(), s)
}

func (t *storeTx) UpdateApp(ctx context.Context, a apps.AppRecord) error {
	tag, err := t.tx.Exec(ctx, sqlUpdateApp, t.Owner(), a.ID, a.Name, a.Description, int64(a.KeyVersion),
		int16(a.Visibility), a.CurrentVersion, a.Updated)
	if err != nil {
		return fmt.Errorf("update app: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("app")
	}
	return nil
}

func (t *storeTx) DeleteApp(ctx context.Context, id uuid.UUID) error {
	tag, err := t.tx.Exec(ctx, sqlDeleteApp, t.Owner(), id)
	if err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("app")
	}
	return nil
}

func (t *storeTx) NextPromptSeq(ctx context.Context, appID uuid.UUID) (int64, error) {
	var seq int64
	err := t.tx.QueryRow(ctx, sqlNextPromptSeq, t.Owner(), appID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound("app")
	}
	if err != nil {
		return 0, fmt.Errorf("next prompt seq: %w", err)
	}
	return seq, nil
}

func (t *storeTx) InsertPrompt(ctx context.Context, p apps.PromptRecord) error {
	_, err := t.tx.Exec(ctx, sqlInsertPrompt, t.Owner(), p.ID, p.AppID, p.Seq, int16(p.Kind), p.Author, p.Text,
		int64(p.KeyVersion), p.Created)
	if err != nil {
		return fmt.Errorf("insert prompt: %w", err)
	}
	return nil
}

func (t *storeTx) queryPrompts(ctx context.Context, q string, args ...any) ([]apps.PromptRecord, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	var (
		out  []apps.PromptRecord
		p    apps.PromptRecord
		kind int16
		ver  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&p.ID, &p.AppID, &p.Seq, &kind, &p.Author, &p.Text, &ver, &p.Created}, func() error {
		p.Kind, p.KeyVersion = apps.PromptKind(kind), uint32(ver)
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	return out, nil
}

func (t *storeTx) Prompts(ctx context.Context, appID uuid.UUID, afterSeq int64, limit int) ([]apps.PromptRecord, error) {
	return t.queryPrompts(ctx, sqlPrompts, t.Owner(), appID, afterSeq, limit)
}

func (t *storeTx) AllPrompts(ctx context.Context, appID uuid.UUID) ([]apps.PromptRecord, error) {
	return t.queryPrompts(ctx, sqlAllPrompts, t.Owner(), appID)
}

func (t *storeTx) InsertPromptRead(ctx context.Context, r apps.PromptRead) error {
	var reader *owner.ID
	if !r.Reader.IsZero() {
		reader = &r.Reader
	}
	_, err := t.tx.Exec(ctx, sqlInsertPromptRead, t.Owner(), r.ID, r.AppID, int16(r.Purpose), reader, r.Workload,
		r.PromptCount, r.Time)
	if err != nil {
		return fmt.Errorf("insert prompt read: %w", err)
	}
	return nil
}

func (t *storeTx) PromptReads(ctx context.Context, appID uuid.UUID, after *apps.Cursor, limit int) ([]apps.PromptRead, error) {
	var (
		afterTime *time.Time
		afterID   *uuid.UUID
	)
	if after != nil {
		afterTime, afterID = &after.Time, &after.ID
	}
	rows, err := t.tx.Query(ctx, sqlPromptReads, t.Owner(), appID, afterTime, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("prompt reads: %w", err)
	}
	var (
		out     []apps.PromptRead
		r       apps.PromptRead
		purpose int16
		reader  *owner.ID
	)
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.AppID, &purpose, &reader, &r.Workload, &r.PromptCount, &r.Time}, func() error {
		r.Purpose, r.Reader = apps.ReadPurpose(purpose), owner.ID{}
		if reader != nil {
			r.Reader = *reader
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prompt reads: %w", err)
	}
	return out, nil
}

func (t *storeTx) InsertReference(ctx context.Context, r apps.ReferenceRecord) error {
	_, err := t.tx.Exec(ctx, sqlInsertReference, t.Owner(), r.ID, r.AppID, r.Meta, r.ContentType, r.Size, r.ObjectKey,
		r.WrappedKey, int64(r.KeyVersion), r.Created)
	if err != nil {
		return fmt.Errorf("insert reference: %w", err)
	}
	return nil
}

func (t *storeTx) queryReferences(ctx context.Context, q string, args ...any) ([]apps.ReferenceRecord, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("references: %w", err)
	}
	var (
		out []apps.ReferenceRecord
		r   apps.ReferenceRecord
		ver int64
	)
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.AppID, &r.Meta, &r.ContentType, &r.Size, &r.ObjectKey, &r.WrappedKey, &ver, &r.Created}, func() error {
		r.KeyVersion = uint32(ver)
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("references: %w", err)
	}
	return out, nil
}

func (t *storeTx) References(ctx context.Context, appID uuid.UUID) ([]apps.ReferenceRecord, error) {
	return t.queryReferences(ctx, sqlReferences, t.Owner(), appID)
}

func (t *storeTx) Reference(ctx context.Context, appID, id uuid.UUID) (apps.ReferenceRecord, error) {
	refs, err := t.queryReferences(ctx, sqlReference, t.Owner(), appID, id)
	if err != nil {
		return apps.ReferenceRecord{}, err
	}
	if len(refs) == 0 {
		return apps.ReferenceRecord{}, notFound("reference")
	}
	return refs[0], nil
}

func (t *storeTx) DeleteReference(ctx context.Context, appID, id uuid.UUID) error {
	tag, err := t.tx.Exec(ctx, sqlDeleteReference, t.Owner(), appID, id)
	if err != nil {
		return fmt.Errorf("delete reference: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("reference")
	}
	return nil
}

func (t *storeTx) CountReferences(ctx context.Context, appID uuid.UUID) (int, error) {
	var n int
	if err := t.tx.QueryRow(ctx, sqlCountReferences, t.Owner(), appID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count references: %w", err)
	}
	return n, nil
}

func (t *storeTx) InsertVersion(ctx context.Context, v apps.VersionRecord) error {
	b := &pgx.Batch{}
	b.Queue(sqlInsertVersion, t.Owner(), v.AppID, v.Version, v.Author, v.Created)
	for _, f := range v.Files {
		b.Queue(sqlInsertVersionFile, t.Owner(), v.AppID, v.Version, f.Path, f.ContentType, f.Size, f.ObjectKey, f.WrappedKey,
			int64(f.KeyVersion))
	}
	br := t.tx.SendBatch(ctx, b)
	var err error
	for range b.QueuedQueries {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("insert version: %w", err)
	}
	return nil
}

func (t *storeTx) Versions(ctx context.Context, appID uuid.UUID) ([]apps.VersionRecord, error) {
	rows, err := t.tx.Query(ctx, sqlVersions, t.Owner(), appID)
	if err != nil {
		return nil, fmt.Errorf("versions: %w", err)
	}
	var (
		out     []apps.VersionRecord
		version int32
		author  string
		created time.Time
		path    *string
		ctype   *string
		size    *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&version, &author, &created, &path, &ctype, &size}, func() error {
		if len(out) == 0 || out[len(out)-1].Version != version {
			out = append(out, apps.VersionRecord{AppID: appID, Version: version, Author: author, Created: created})
		}
		if path != nil {
			v := &out[len(out)-1]
			v.Files = append(v.Files, apps.FileRecord{Path: *path, ContentType: *ctype, Size: *size})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("versions: %w", err)
	}
	// Object keys and key versions are read per file when content is needed.
	return out, nil
}

func (t *storeTx) queryFiles(ctx context.Context, q string, args ...any) ([]apps.FileRecord, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("version files: %w", err)
	}
	var (
		out []apps.FileRecord
		f   apps.FileRecord
		ver int64
	)
	_, err = pgx.ForEachRow(rows, []any{&f.Path, &f.ContentType, &f.Size, &f.ObjectKey, &f.WrappedKey, &ver}, func() error {
		f.KeyVersion = uint32(ver)
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("version files: %w", err)
	}
	return out, nil
}

func (t *storeTx) VersionFile(ctx context.Context, appID uuid.UUID, version int32, path string) (apps.FileRecord, error) {
	files, err := t.queryFiles(ctx, sqlVersionFile, t.Owner(), appID, version, path)
	if err != nil {
		return apps.FileRecord{}, err
	}
	if len(files) == 0 {
		return apps.FileRecord{}, notFound("file")
	}
	return files[0], nil
}

func (t *storeTx) VersionFiles(ctx context.Context, appID uuid.UUID, version int32) ([]apps.FileRecord, error) {
	return t.queryFiles(ctx, sqlVersionFiles, t.Owner(), appID, version)
}

func (t *storeTx) InsertShareLink(ctx context.Context, l apps.ShareLinkRecord) error {
	_, err := t.tx.Exec(ctx, sqlInsertShareLink, t.Owner(), l.ID, l.AppID, l.TokenHash, l.Created, l.Expires)
	if err != nil {
		return fmt.Errorf("insert share link: %w", err)
	}
	return nil
}

func (t *storeTx) ShareLinks(ctx context.Context, appID uuid.UUID, now time.Time) ([]apps.ShareLinkRecord, error) {
	rows, err := t.tx.Query(ctx, sqlShareLinks, t.Owner(), appID, now)
	if err != nil {
		return nil, fmt.Errorf("share links: %w", err)
	}
	var (
		out []apps.ShareLinkRecord
		l   apps.ShareLinkRecord
	)
	_, err = pgx.ForEachRow(rows, []any{&l.ID, &l.AppID, &l.Created, &l.Expires}, func() error {
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("share links: %w", err)
	}
	return out, nil
}

func (t *storeTx) RevokeShareLink(ctx context.Context, appID, id uuid.UUID, now time.Time) error {
	tag, err := t.tx.Exec(ctx, sqlRevokeShareLink, t.Owner(), appID, id, now)
	if err != nil {
		return fmt.Errorf("revoke share link: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("share link")
	}
	return nil
}

func (t *storeTx) HasLiveShareLink(ctx context.Context, appID uuid.UUID, now time.Time) (bool, error) {
	var ok bool
	if err := t.tx.QueryRow(ctx, sqlHasLiveShareLink, t.Owner(), appID, now).Scan(&ok); err != nil {
		return false, fmt.Errorf("live share link: %w", err)
	}
	return ok, nil
}

func (t *storeTx) InsertCollaborator(ctx context.Context, c apps.CollaboratorRecord) error {
	tag, err := t.tx.Exec(ctx, sqlInsertCollaborator, t.Owner(), c.ID, c.AppID, c.Member, c.Email, int64(c.KeyVersion),
		int16(c.Role), c.Created)
	if err != nil {
		return fmt.Errorf("insert collaborator: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fault.AlreadyExists("that tenant already collaborates on this app")
	}
	return nil
}

func (t *storeTx) Collaborators(ctx context.Context, appID uuid.UUID) ([]apps.CollaboratorRecord, error) {
	rows, err := t.tx.Query(ctx, sqlCollaborators, t.Owner(), appID)
	if err != nil {
		return nil, fmt.Errorf("collaborators: %w", err)
	}
	var (
		out  []apps.CollaboratorRecord
		c    apps.CollaboratorRecord
		ver  int64
		role int16
	)
	_, err = pgx.ForEachRow(rows, []any{&c.ID, &c.AppID, &c.Member, &c.Email, &ver, &role, &c.Created}, func() error {
		c.KeyVersion, c.Role = uint32(ver), apps.Role(role)
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("collaborators: %w", err)
	}
	return out, nil
}

func (t *storeTx) DeleteCollaborator(ctx context.Context, appID, id uuid.UUID) error {
	tag, err := t.tx.Exec(ctx, sqlDeleteCollaborator, t.Owner(), appID, id)
	if err != nil {
		return fmt.Errorf("delete collaborator: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("collaborator")
	}
	return nil
}

func (t *storeTx) ListingID(ctx context.Context, appID uuid.UUID) (uuid.UUID, bool, error) {
	var id uuid.UUID
	err := t.tx.QueryRow(ctx, sqlListingID, t.Owner(), appID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, false, nil
	}
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("listing id: %w", err)
	}
	return id, true, nil
}

func (t *storeTx) UpsertListing(ctx context.Context, l apps.ListingRecord) ([]string, error) {
	old, _, err := t.DeleteListing(ctx, l.AppID)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	b.Queue(sqlInsertListing, t.Owner(), l.ID, l.AppID, l.Name, l.Description, l.Version, l.Published)
	for _, f := range l.Files {
		b.Queue(sqlInsertListingFile, t.Owner(), l.ID, f.Path, f.ContentType, f.Size, f.ObjectKey)
	}
	br := t.tx.SendBatch(ctx, b)
	for range b.QueuedQueries {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("insert listing: %w", err)
	}
	return old, nil
}

func (t *storeTx) DeleteListing(ctx context.Context, appID uuid.UUID) ([]string, bool, error) {
	rows, err := t.tx.Query(ctx, sqlDeleteListing, t.Owner(), appID)
	if err != nil {
		return nil, false, fmt.Errorf("delete listing: %w", err)
	}
	var (
		keys    []string
		key     *string
		existed bool
	)
	_, err = pgx.ForEachRow(rows, []any{&key}, func() error {
		existed = true
		if key != nil {
			keys = append(keys, *key)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("delete listing: %w", err)
	}
	return keys, existed, nil
}

func (t *storeTx) Holds(ctx context.Context) (bool, error) {
	var ok bool
	if err := t.tx.QueryRow(ctx, sqlHolds, t.Owner()).Scan(&ok); err != nil {
		return false, fmt.Errorf("holds: %w", err)
	}
	return ok, nil
}

func (t *storeTx) Disabled(ctx context.Context) (bool, error) {
	var ok bool
	if err := t.tx.QueryRow(ctx, sqlDisabled, t.Owner()).Scan(&ok); err != nil {
		return false, fmt.Errorf("disabled: %w", err)
	}
	return ok, nil
}

func (t *storeTx) Disable(ctx context.Context, now time.Time) (int, int, []string, error) {
	if _, err := t.tx.Exec(ctx, sqlDisable, t.Owner(), now); err != nil {
		return 0, 0, nil, fmt.Errorf("disable: %w", err)
	}
	var keys []string
	rows, err := t.tx.Query(ctx, sqlDeleteListings, t.Owner())
	if err != nil {
		return 0, 0, nil, fmt.Errorf("disable: listings: %w", err)
	}
	listings := map[uuid.UUID]bool{}
	var (
		id  uuid.UUID
		key *string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &key}, func() error {
		listings[id] = true
		if key != nil {
			keys = append(keys, *key)
		}
		return nil
	})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("disable: listings: %w", err)
	}
	var links int
	if err := t.tx.QueryRow(ctx, sqlDeleteShareLinks, t.Owner(), now).Scan(&links); err != nil {
		return 0, 0, nil, fmt.Errorf("disable: share links: %w", err)
	}
	if _, err := t.tx.Exec(ctx, sqlMakePrivate, t.Owner(), now); err != nil {
		return 0, 0, nil, fmt.Errorf("disable: visibility: %w", err)
	}
	return len(listings), links, keys, nil
}

func (t *storeTx) Restore(ctx context.Context) error {
	if _, err := t.tx.Exec(ctx, sqlRestore, t.Owner()); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// purgeOrder deletes children before parents, so no batch trips a foreign key; owner_state
// goes last (the purge is only allowed while it marks the owner disabled).
var purgeOrder = []string{
	"version_files", "versions", "prompts", "app_references", "share_links", "collaborators",
	"listing_files", "listings", "apps", "inbox", "event_dead_letters",
}

func (t *storeTx) PurgeRows(ctx context.Context, limit int) (int64, bool, error) {
	var total int64
	for _, table := range purgeOrder {
		// table comes from the constant list above, never from input.
		tag, err := t.tx.Exec(ctx, fmt.Sprintf(sqlPurgeTableFmt, table, table), t.Owner(), limit-int(total))
		if err != nil {
			return total, false, fmt.Errorf("purge %s: %w", table, err)
		}
		total += tag.RowsAffected()
		if int(total) >= limit {
			return total, false, nil
		}
	}
	var leftover bool
	if err := t.tx.QueryRow(ctx, sqlPromptReadsLeft, t.Owner()).Scan(&leftover); err != nil {
		return total, false, fmt.Errorf("purge: %w", err)
	}
	if leftover {
		return total, false, nil
	}
	tag, err := t.tx.Exec(ctx, sqlPurgeOwnerState, t.Owner())
	if err != nil {
		return total, false, fmt.Errorf("purge owner state: %w", err)
	}
	return total + tag.RowsAffected(), true, nil
}

// Events. The outbox checks the context's owner against the event's, and in a collaborator's
// request the context carries the collaborator: events are about the transaction's owner.

func (t *storeTx) emit(ctx context.Context, ev events.Event) error {
	if t.s.outbox == nil {
		return errors.New("no outbox configured")
	}
	ctx = owner.NewContext(ctx, owner.Owner{ID: t.Owner(), HomeRegion: t.s.region})
	if _, err := t.s.outbox.Enqueue(ctx, t.tx, ev); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

func (t *storeTx) meta() *eventsv1.EventMeta {
	return &eventsv1.EventMeta{OwnerId: t.Owner().String()}
}

func (t *storeTx) AppCreated(ctx context.Context, appID uuid.UUID) error {
	return t.emit(ctx, &eventsv1.AppCreated{Meta: t.meta(), AppId: appID.String()})
}

func (t *storeTx) AppDeleted(ctx context.Context, appID uuid.UUID) error {
	return t.emit(ctx, &eventsv1.AppDeleted{Meta: t.meta(), AppId: appID.String()})
}

func (t *storeTx) AccessChanged(ctx context.Context, appID uuid.UUID, reason apps.AccessReason) error {
	id := ""
	if appID != uuid.Nil {
		id = appID.String()
	}
	return t.emit(ctx, &eventsv1.AppAccessChanged{Meta: t.meta(), AppId: id, Reason: eventsv1.AppAccessChanged_Reason(reason)})
}

func (t *storeTx) PurgeCompleted(ctx context.Context, deletionID uuid.UUID, rows, objects int64) error {
	return t.emit(ctx, &eventsv1.PurgeStoreCompleted{Meta: t.meta(), DeletionId: deletionID.String(), Store: "apps",
		RowsDeleted: rows, ObjectsDeleted: objects})
}
