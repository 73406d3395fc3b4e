// Package postgres stores data-lifecycle's export jobs, deletions and purge reports: the SQL
// (as constants) and the embedded migrations. Every statement runs in an owner transaction
// (RLS underneath, owner_id = $1 in the SQL too); the only cross-tenant reads are the reviewed
// SECURITY DEFINER functions of the migration, which return IDs only.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/fault"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
)

// Schema is the service's schema.
const Schema = "lifecycle"

// SourceName is the name of this service's migration source.
const SourceName = "lifecycle"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the service's migrations (files at the root).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	return sub
}

// Sources are every migration source of the schema, in order.
func Sources() []database.Source {
	return []database.Source{
		{Name: events.MigrationSourceName, FS: events.Migrations()},
		{Name: SourceName, FS: Migrations()},
	}
}

// DefinerFunctions are the reviewed SECURITY DEFINER functions of the schema.
func DefinerFunctions() []string {
	return append(events.SecurityDefinerFunctions(),
		"deletions_due", "deletions_to_reconcile", "deletion_by_receipt", "exports_expired",
		"deletion_ledger", "purge_status")
}

// Store is the service's storage.
type Store struct {
	db     *database.DB
	outbox *events.Outbox
}

// New returns a Store; outbox writes the events announcing state changes.
func New(db *database.DB, outbox *events.Outbox) *Store { return &Store{db: db, outbox: outbox} }

// Export is a stored export job.
type Export struct {
	ID        uuid.UUID
	Owner     owner.ID
	State     lifecycle.ExportState
	Progress  int
	Attempt   int
	SizeBytes int64
	ObjectKey string
	Created   time.Time
	Ready     *time.Time
	Expire    *time.Time
}

const exportCols = `id, owner_id, state, progress_percent, attempt, size_bytes, coalesce(object_key, ''), created_at, ready_at, expire_at`

func scanExport(row pgx.Row) (Export, error) {
	var e Export
	var state string
	err := row.Scan(&e.ID, &e.Owner, &state, &e.Progress, &e.Attempt, &e.SizeBytes, &e.ObjectKey, &e.Created, &e.Ready, &e.Expire)
	e.State = lifecycle.ExportState(state)
	return e, err
}

// errExportNotFound is the one answer for a missing and a foreign export.
func errExportNotFound() error { return fault.NotFound("export not found") }

func uniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// CreateExport records a pending export and its ExportRequested event in one transaction.
func (s *Store) CreateExport(ctx context.Context, o owner.Owner, now time.Time) (Export, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Export{}, err
	}
	var e Export
	err = s.db.Tx(ctx, o.ID, func(ctx context.Context, tx database.Tx) error {
		e, err = scanExport(tx.QueryRow(ctx, `
			INSERT INTO exports (owner_id, id, state, created_at, updated_at)
			VALUES ($1, $2, 'pending', $3, $3) RETURNING `+exportCols, o.ID, id, now))
		if err != nil {
			if uniqueViolation(err, "exports_one_active") {
				return fault.FailedPrecondition("an export is already in progress; one at a time")
			}
			return fmt.Errorf("insert export: %w", err)
		}
		_, err = s.outbox.Enqueue(ctx, tx, &eventsv1.ExportRequested{
			Meta: &eventsv1.EventMeta{OwnerId: o.ID.String(), Region: o.HomeRegion.String()}, ExportId: id.String(),
		})
		return err
	})
	return e, err
}

// GetExport reads one export of the owner.
func (s *Store) GetExport(ctx context.Context, o owner.ID, id uuid.UUID) (Export, error) {
	e, err := scanExport(s.db.QueryRow(ctx, o, `SELECT `+exportCols+` FROM exports WHERE owner_id = $1 AND id = $2`, o, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Export{}, errExportNotFound()
	}
	return e, err
}

// ListExports lists the owner's exports, newest first (at most 100).
func (s *Store) ListExports(ctx context.Context, o owner.ID) ([]Export, error) {
	var out []Export
	err := s.db.TxWith(ctx, o, database.TxOptions{ReadOnly: true}, func(ctx context.Context, tx database.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT `+exportCols+` FROM exports WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100`, o)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanExport(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// CancelExport cancels a pending or running export of the owner.
func (s *Store) CancelExport(ctx context.Context, o owner.ID, id uuid.UUID, now time.Time) (Export, error) {
	var e Export
	err := s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		var err error
		e, err = scanExport(tx.QueryRow(ctx, `SELECT `+exportCols+` FROM exports WHERE owner_id = $1 AND id = $2 FOR UPDATE`, o, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return errExportNotFound()
		}
		if err != nil {
			return err
		}
		if !e.State.Active() {
			return fault.FailedPrecondition("the export is %s; only a pending or running export can be cancelled", e.State)
		}
		e, err = scanExport(tx.QueryRow(ctx, `UPDATE exports SET state = 'cancelled', updated_at = $3
			WHERE owner_id = $1 AND id = $2 RETURNING `+exportCols, o, id, now))
		return err
	})
	return e, err
}

// StartExportAttempt moves an active export to running with a new attempt number; ok is false
// when the export has nothing left to do (ready, cancelled, failed, expired, gone).
func (s *Store) StartExportAttempt(ctx context.Context, o owner.ID, id uuid.UUID, now time.Time) (attempt int, ok bool, err error) {
	err = s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE exports SET state = 'running', attempt = attempt + 1, progress_percent = 0,
				started_at = $3, updated_at = $3
			WHERE owner_id = $1 AND id = $2 AND state IN ('pending', 'running') RETURNING attempt`, o, id, now).Scan(&attempt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return attempt, ok, err
}

// SetExportProgress records progress of the given attempt; ok is false when the attempt no
// longer owns the export (cancelled, or a newer attempt took over).
func (s *Store) SetExportProgress(ctx context.Context, o owner.ID, id uuid.UUID, attempt, percent int, now time.Time) (ok bool, err error) {
	err = s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE exports SET progress_percent = $4, updated_at = $5
			WHERE owner_id = $1 AND id = $2 AND attempt = $3 AND state = 'running'`, o, id, attempt, percent, now)
		ok = err == nil && tag.RowsAffected() == 1
		return err
	})
	return ok, err
}

// FinishExport marks the attempt's archive ready; ok is false when the attempt no longer owns
// the export (its object must then be deleted by the caller).
func (s *Store) FinishExport(ctx context.Context, o owner.ID, id uuid.UUID, attempt int, objectKey string, size int64, now time.Time) (ok bool, err error) {
	err = s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE exports SET state = 'ready', progress_percent = 100, object_key = $4,
				size_bytes = $5, ready_at = $6, expire_at = $7, updated_at = $6
			WHERE owner_id = $1 AND id = $2 AND attempt = $3 AND state = 'running'`,
			o, id, attempt, objectKey, size, now, now.Add(lifecycle.ExportRetention))
		ok = err == nil && tag.RowsAffected() == 1
		return err
	})
	return ok, err
}

// FailExport marks an active export failed (its deliveries are exhausted).
func (s *Store) FailExport(ctx context.Context, o owner.ID, id uuid.UUID, now time.Time) error {
	return s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE exports SET state = 'failed', updated_at = $3
			WHERE owner_id = $1 AND id = $2 AND state IN ('pending', 'running')`, o, id, now)
		return err
	})
}

// CreateDownloadLink stores a link's token hash for a ready export.
func (s *Store) CreateDownloadLink(ctx context.Context, o owner.ID, id uuid.UUID, hash []byte, now time.Time) (time.Time, error) {
	expire := now.Add(lifecycle.DownloadLinkTTL)
	err := s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		e, err := scanExport(tx.QueryRow(ctx, `SELECT `+exportCols+` FROM exports WHERE owner_id = $1 AND id = $2`, o, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return errExportNotFound()
		}
		if err != nil {
			return err
		}
		if e.State != lifecycle.ExportReady || !now.Before(*e.Expire) {
			return fault.FailedPrecondition("the export is %s; only a ready export can be downloaded", e.State)
		}
		_, err = tx.Exec(ctx, `INSERT INTO export_links (owner_id, export_id, token_hash, created_at, expire_at)
			VALUES ($1, $2, $3, $4, $5)`, o, id, hash, now, expire)
		return err
	})
	return expire, err
}

// ConsumeDownloadLink uses a link once and returns its ready export. A used, expired, unknown
// or foreign token, and an export no longer ready, all answer the same NotFound.
func (s *Store) ConsumeDownloadLink(ctx context.Context, o owner.ID, id uuid.UUID, hash []byte, now time.Time) (Export, error) {
	var e Export
	err := s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE export_links SET used_at = $4
			WHERE owner_id = $1 AND export_id = $2 AND token_hash = $3 AND used_at IS NULL AND expire_at > $4`, o, id, hash, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fault.NotFound("download link not found or already used")
		}
		e, err = scanExport(tx.QueryRow(ctx, `SELECT `+exportCols+` FROM exports
			WHERE owner_id = $1 AND id = $2 AND state = 'ready' AND expire_at > $3`, o, id, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.NotFound("download link not found or already used")
		}
		return err
	})
	return e, err
}

// ExpiredExport names a ready archive past its expiry.
type ExpiredExport struct {
	Owner owner.ID
	ID    uuid.UUID
}

// ExpiredExports lists ready archives past their expiry at now.
func (s *Store) ExpiredExports(ctx context.Context, now time.Time, limit int) ([]ExpiredExport, error) {
	var out []ExpiredExport
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT owner_id, id FROM exports_expired($1, $2)`, now, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e ExpiredExport
			if err := rows.Scan(&e.Owner, &e.ID); err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// ExpireExport marks a ready export expired (its object already deleted) and returns the key
// of the object it had; ok is false if it is not ready and past expiry any more.
func (s *Store) ExpireExport(ctx context.Context, o owner.ID, id uuid.UUID, now time.Time) (ok bool, err error) {
	err = s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE exports SET state = 'expired', updated_at = $3
			WHERE owner_id = $1 AND id = $2 AND state = 'ready' AND expire_at <= $3`, o, id, now)
		ok = err == nil && tag.RowsAffected() == 1
		return err
	})
	return ok, err
}

// PurgeOwnBatch deletes up to limit of the owner's export rows (their links go with them) and
// returns how many rows went. The caller deletes the archives first.
func (s *Store) PurgeOwnBatch(ctx context.Context, o owner.ID, limit int) (int64, error) {
	var n int64
	err := s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		var links, exports int64
		err := tx.QueryRow(ctx, `
			WITH doomed AS (SELECT id FROM exports WHERE owner_id = $1 ORDER BY id LIMIT $2),
			l AS (DELETE FROM export_links x USING doomed d WHERE x.owner_id = $1 AND x.export_id = d.id RETURNING 1),
			e AS (DELETE FROM exports x USING doomed d WHERE x.owner_id = $1 AND x.id = d.id RETURNING 1)
			SELECT (SELECT count(*) FROM l), (SELECT count(*) FROM e)`, o, limit).Scan(&links, &exports)
		if err != nil {
			return err
		}
		inbox, err := events.PurgeInbox(ctx, tx, o)
		if err != nil {
			return err
		}
		dead, err := events.PurgeDeadLetters(ctx, tx, o)
		n = links + exports + inbox + dead
		return err
	})
	return n, err
}
