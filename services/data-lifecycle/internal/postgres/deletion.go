package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/fault"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
)

// Deletion is a stored account deletion.
type Deletion struct {
	ID            uuid.UUID
	Owner         owner.ID
	Region        owner.Region
	State         lifecycle.DeletionState
	Requested     time.Time
	Due           time.Time
	Disabled      *time.Time
	Cancelled     *time.Time
	Restored      *time.Time
	PurgeStarted  *time.Time
	Attempts      int
	LastAttempt   *time.Time
	Completed     *time.Time
	Certificate   *lifecycle.Certificate
	StoresPending []string
	Reports       []lifecycle.StoreReport
}

const deletionCols = `id, owner_id, home_region, state, requested_at, purge_due_at, disabled_at, cancelled_at, restored_at,
	purge_started_at, purge_attempts, last_attempt_at, completed_at, cert_payload, cert_signature, coalesce(cert_key_id, '')`

func scanDeletion(row pgx.Row) (Deletion, error) {
	var d Deletion
	var state, region, keyID string
	var payload, sig []byte
	err := row.Scan(&d.ID, &d.Owner, &region, &state, &d.Requested, &d.Due, &d.Disabled, &d.Cancelled, &d.Restored,
		&d.PurgeStarted, &d.Attempts, &d.LastAttempt, &d.Completed, &payload, &sig, &keyID)
	d.State, d.Region = lifecycle.DeletionState(state), owner.Region(region)
	if payload != nil {
		d.Certificate = &lifecycle.Certificate{Payload: payload, Signature: sig, KeyID: keyID}
	}
	return d, err
}

func errDeletionNotFound() error { return fault.NotFound("deletion not found") }

// loadStores fills the store reports of d.
func loadStores(ctx context.Context, tx database.Tx, d *Deletion) error {
	rows, err := tx.Query(ctx, `SELECT store, done_at IS NOT NULL, rows_deleted, objects_deleted, key_versions_destroyed
		FROM purge_stores WHERE owner_id = $1 AND deletion_id = $2 ORDER BY store`, d.Owner, d.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	d.StoresPending, d.Reports = nil, nil
	for rows.Next() {
		var r lifecycle.StoreReport
		var done bool
		var versions []int32
		if err := rows.Scan(&r.Store, &done, &r.RowsDeleted, &r.ObjectsDeleted, &versions); err != nil {
			return err
		}
		for _, v := range versions {
			r.KeyVersionsDestroyed = append(r.KeyVersionsDestroyed, uint32(v))
		}
		if done {
			d.Reports = append(d.Reports, r)
		} else {
			d.StoresPending = append(d.StoresPending, r.Store)
		}
	}
	return rows.Err()
}

// RequestDeletion records a pending deletion due lifecycle.PurgeDelay after now, cancels the
// owner's active exports and writes DeletionRequested, in one transaction.
func (s *Store) RequestDeletion(ctx context.Context, o owner.Owner, receiptHash []byte, now time.Time) (Deletion, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Deletion{}, err
	}
	var d Deletion
	err = s.db.Tx(ctx, o.ID, func(ctx context.Context, tx database.Tx) error {
		d, err = scanDeletion(tx.QueryRow(ctx, `
			INSERT INTO deletions (owner_id, id, state, home_region, receipt_hash, requested_at, purge_due_at)
			VALUES ($1, $2, 'pending', $3, $4, $5, $6) RETURNING `+deletionCols,
			o.ID, id, o.HomeRegion.String(), receiptHash, now, now.Add(lifecycle.PurgeDelay)))
		if err != nil {
			if uniqueViolation(err, "deletions_one_open") {
				return fault.FailedPrecondition("a deletion of this account is already pending")
			}
			return fmt.Errorf("insert deletion: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE exports SET state = 'cancelled', updated_at = $2
			WHERE owner_id = $1 AND state IN ('pending', 'running')`, o.ID, now); err != nil {
			return fmt.Errorf("cancel exports: %w", err)
		}
		_, err = s.outbox.Enqueue(ctx, tx, &eventsv1.DeletionRequested{
			Meta:         &eventsv1.EventMeta{OwnerId: o.ID.String(), Region: o.HomeRegion.String()},
			DeletionId:   id.String(),
			PurgeDueTime: timestamppb.New(d.Due),
		})
		return err
	})
	return d, err
}

// OpenDeletion returns the owner's pending or purging deletion.
func (s *Store) OpenDeletion(ctx context.Context, o owner.ID) (Deletion, error) {
	var d Deletion
	err := s.db.TxWith(ctx, o, database.TxOptions{ReadOnly: true}, func(ctx context.Context, tx database.Tx) error {
		var err error
		d, err = scanDeletion(tx.QueryRow(ctx, `SELECT `+deletionCols+` FROM deletions
			WHERE owner_id = $1 AND state IN ('pending', 'purging')`, o))
		if errors.Is(err, pgx.ErrNoRows) {
			return errDeletionNotFound()
		}
		if err != nil {
			return err
		}
		return loadStores(ctx, tx, &d)
	})
	return d, err
}

// GetDeletion reads one deletion of the owner with its store reports.
func (s *Store) GetDeletion(ctx context.Context, o owner.ID, id uuid.UUID) (Deletion, error) {
	var d Deletion
	err := s.db.TxWith(ctx, o, database.TxOptions{ReadOnly: true}, func(ctx context.Context, tx database.Tx) error {
		var err error
		d, err = scanDeletion(tx.QueryRow(ctx, `SELECT `+deletionCols+` FROM deletions WHERE owner_id = $1 AND id = $2`, o, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return errDeletionNotFound()
		}
		if err != nil {
			return err
		}
		return loadStores(ctx, tx, &d)
	})
	return d, err
}

// DeletionByReceipt finds the deletion of a receipt (by its hash): the one cross-tenant read
// the receipt needs, since the account (and its sessions) may be gone.
func (s *Store) DeletionByReceipt(ctx context.Context, hash []byte) (Deletion, error) {
	var o owner.ID
	var id uuid.UUID
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, `SELECT owner_id, id FROM deletion_by_receipt($1)`, hash).Scan(&o, &id)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Deletion{}, fault.NotFound("receipt not found")
	}
	if err != nil {
		return Deletion{}, err
	}
	return s.GetDeletion(ctx, o, id)
}

// CancelDeletion cancels the owner's pending deletion when it is not due yet at now, and
// writes DeletionCancelled.
func (s *Store) CancelDeletion(ctx context.Context, o owner.Owner, now time.Time) (Deletion, error) {
	var d Deletion
	err := s.db.Tx(ctx, o.ID, func(ctx context.Context, tx database.Tx) error {
		var err error
		d, err = scanDeletion(tx.QueryRow(ctx, `SELECT `+deletionCols+` FROM deletions
			WHERE owner_id = $1 AND state IN ('pending', 'purging') FOR UPDATE`, o.ID))
		if errors.Is(err, pgx.ErrNoRows) {
			return errDeletionNotFound()
		}
		if err != nil {
			return err
		}
		if d.State != lifecycle.DeletionPending || lifecycle.Due(d.Due, now) {
			return fault.FailedPrecondition("the purge is due or under way; the deletion can no longer be cancelled")
		}
		d, err = scanDeletion(tx.QueryRow(ctx, `UPDATE deletions SET state = 'cancelled', cancelled_at = $3
			WHERE owner_id = $1 AND id = $2 RETURNING `+deletionCols, o.ID, d.ID, now))
		if err != nil {
			return err
		}
		_, err = s.outbox.Enqueue(ctx, tx, &eventsv1.DeletionCancelled{
			Meta: &eventsv1.EventMeta{OwnerId: o.ID.String(), Region: o.HomeRegion.String()}, DeletionId: d.ID.String(),
		})
		return err
	})
	return d, err
}

// Ref names a deletion across tenants.
type Ref struct {
	Owner owner.ID
	ID    uuid.UUID
	State lifecycle.DeletionState
}

func (s *Store) refs(ctx context.Context, sql string, withState bool, args ...any) ([]Ref, error) {
	var out []Ref
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r Ref
			var state string
			dest := []any{&r.Owner, &r.ID}
			if withState {
				dest = append(dest, &state)
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			r.State = lifecycle.DeletionState(state)
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// DueDeletions lists pending deletions due at now.
func (s *Store) DueDeletions(ctx context.Context, now time.Time, limit int) ([]Ref, error) {
	return s.refs(ctx, `SELECT owner_id, id FROM deletions_due($1, $2)`, false, now, limit)
}

// DeletionsToReconcile lists deletions whose downstream effects are not applied yet, and
// purges not fanned out since staleBefore.
func (s *Store) DeletionsToReconcile(ctx context.Context, staleBefore time.Time, limit int) ([]Ref, error) {
	return s.refs(ctx, `SELECT owner_id, id, state FROM deletions_to_reconcile($1, $2)`, true, staleBefore, limit)
}

// Ledger lists the purges completed since after (the deletion ledger).
func (s *Store) Ledger(ctx context.Context, after time.Time) ([]Ref, error) {
	return s.refs(ctx, `SELECT owner_id, id FROM deletion_ledger($1)`, false, after)
}

// PurgeStatus counts purges under way and those started before overdue.
func (s *Store) PurgeStatus(ctx context.Context, overdue time.Time) (purging, late int64, err error) {
	err = s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, `SELECT purging, overdue FROM purge_status($1)`, overdue).Scan(&purging, &late)
	})
	return purging, late, err
}

// WithDeletion locks one deletion for the length of fn (which may call other services), then
// applies the update fn returns. Cancel, claim and reconcile all take this lock, so
// downstream calls for one deletion never interleave.
func (s *Store) WithDeletion(ctx context.Context, o owner.ID, id uuid.UUID, fn func(ctx context.Context, d Deletion) (Update, error)) (Deletion, error) {
	var d Deletion
	err := s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		var err error
		d, err = scanDeletion(tx.QueryRow(ctx, `SELECT `+deletionCols+` FROM deletions WHERE owner_id = $1 AND id = $2 FOR UPDATE`, o, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return errDeletionNotFound()
		}
		if err != nil {
			return err
		}
		u, err := fn(ctx, d)
		if err != nil {
			return err
		}
		if u.Disabled != nil {
			if _, err := tx.Exec(ctx, `UPDATE deletions SET disabled_at = $3 WHERE owner_id = $1 AND id = $2 AND disabled_at IS NULL`, o, id, *u.Disabled); err != nil {
				return err
			}
			d.Disabled = u.Disabled
		}
		if u.Restored != nil {
			if _, err := tx.Exec(ctx, `UPDATE deletions SET restored_at = $3 WHERE owner_id = $1 AND id = $2 AND restored_at IS NULL`, o, id, *u.Restored); err != nil {
				return err
			}
			d.Restored = u.Restored
		}
		return nil
	})
	return d, err
}

// Update is what WithDeletion's fn applied.
type Update struct {
	Disabled *time.Time
	Restored *time.Time
}

// ClaimPurge starts the purge of a due deletion: pending -> purging, one row per registry
// store, and PurgeRequested, in one transaction. The conditional UPDATE (state still pending,
// due at now) and SKIP LOCKED make a row claimed once however many replicas try; ok is false
// for the losers and for a deletion cancelled meanwhile.
func (s *Store) ClaimPurge(ctx context.Context, o owner.ID, id uuid.UUID, stores []string, now time.Time) (ok bool, err error) {
	err = s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		var region string
		err := tx.QueryRow(ctx, `
			WITH c AS (SELECT owner_id, id FROM deletions
				WHERE owner_id = $1 AND id = $2 AND state = 'pending' AND purge_due_at <= $3
				FOR UPDATE SKIP LOCKED)
			UPDATE deletions d SET state = 'purging', purge_started_at = $3, purge_attempts = 1, last_attempt_at = $3
			FROM c WHERE d.owner_id = c.owner_id AND d.id = c.id RETURNING d.home_region`, o, id, now).Scan(&region)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, st := range stores {
			if _, err := tx.Exec(ctx, `INSERT INTO purge_stores (owner_id, deletion_id, store) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, o, id, st); err != nil {
				return err
			}
		}
		if err := s.enqueuePurge(ctx, tx, o, region, id); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return ok, err
}

func (s *Store) enqueuePurge(ctx context.Context, tx database.Tx, o owner.ID, region string, id uuid.UUID) error {
	_, err := s.outbox.Enqueue(ctx, tx, &eventsv1.PurgeRequested{
		Meta: &eventsv1.EventMeta{OwnerId: o.String(), Region: region}, DeletionId: id.String(),
	})
	return err
}

// RetryPurge fans a purge out again (a new PurgeRequested) when it is still purging and was
// last fanned out before staleBefore; ok is false otherwise.
func (s *Store) RetryPurge(ctx context.Context, o owner.ID, id uuid.UUID, staleBefore, now time.Time) (ok bool, err error) {
	err = s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		var region string
		err := tx.QueryRow(ctx, `UPDATE deletions SET purge_attempts = purge_attempts + 1, last_attempt_at = $4
			WHERE owner_id = $1 AND id = $2 AND state = 'purging' AND last_attempt_at < $3 RETURNING home_region`,
			o, id, staleBefore, now).Scan(&region)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		ok = true
		return s.enqueuePurge(ctx, tx, o, region, id)
	})
	return ok, err
}

// ReplayPurge starts a purge again for an owner of the deletion ledger after a restore: the
// restored open deletion is moved to purging, or a new deletion (state purging, no receipt
// anyone holds) is recorded, and PurgeRequested is written. ok is false when a purge of the
// owner is already under way.
func (s *Store) ReplayPurge(ctx context.Context, o owner.Owner, stores []string, receiptHash []byte, now time.Time) (id uuid.UUID, ok bool, err error) {
	err = s.db.Tx(ctx, o.ID, func(ctx context.Context, tx database.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT id, state FROM deletions WHERE owner_id = $1 AND state IN ('pending', 'purging') FOR UPDATE`, o.ID).Scan(&id, &state)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if id, err = uuid.NewV7(); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO deletions (owner_id, id, state, home_region, receipt_hash, requested_at,
					purge_due_at, purge_started_at, purge_attempts, last_attempt_at)
				VALUES ($1, $2, 'purging', $3, $4, $5, $6, $5, 1, $5)`,
				o.ID, id, o.HomeRegion.String(), receiptHash, now, now.Add(time.Microsecond)); err != nil {
				return err
			}
		case err != nil:
			return err
		case state == string(lifecycle.DeletionPurging):
			return nil
		default:
			if _, err := tx.Exec(ctx, `UPDATE deletions SET state = 'purging', purge_started_at = $3, purge_attempts = 1,
				last_attempt_at = $3 WHERE owner_id = $1 AND id = $2`, o.ID, id, now); err != nil {
				return err
			}
		}
		for _, st := range stores {
			if _, err := tx.Exec(ctx, `INSERT INTO purge_stores (owner_id, deletion_id, store) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, o.ID, id, st); err != nil {
				return err
			}
		}
		ok = true
		return s.enqueuePurge(ctx, tx, o.ID, o.HomeRegion.String(), id)
	})
	return id, ok, err
}

// ErrUnknownStore is returned for a report from a store the registry does not list.
var ErrUnknownStore = errors.New("purge report from a store not on the registry")

// RecordStoreReport records a store's first completion report for a purge (a repeated report
// changes nothing) and returns the deletion with every report so far. A report for a
// deletion that is not purging (completed, or unknown) is ignored: ok is false.
func (s *Store) RecordStoreReport(ctx context.Context, o owner.ID, id uuid.UUID, r lifecycle.StoreReport, now time.Time) (d Deletion, ok bool, err error) {
	if !lifecycle.KnownStore(r.Store) {
		return Deletion{}, false, fmt.Errorf("%w: %q", ErrUnknownStore, r.Store)
	}
	err = s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		var err error
		d, err = scanDeletion(tx.QueryRow(ctx, `SELECT `+deletionCols+` FROM deletions WHERE owner_id = $1 AND id = $2 FOR UPDATE`, o, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.State != lifecycle.DeletionPurging {
			return nil
		}
		versions := make([]int32, 0, len(r.KeyVersionsDestroyed))
		for _, v := range r.KeyVersionsDestroyed {
			versions = append(versions, int32(v))
		}
		slices.Sort(versions)
		if _, err := tx.Exec(ctx, `UPDATE purge_stores SET done_at = $4, rows_deleted = $5, objects_deleted = $6,
				key_versions_destroyed = $7
			WHERE owner_id = $1 AND deletion_id = $2 AND store = $3 AND done_at IS NULL`,
			o, id, r.Store, now, r.RowsDeleted, r.ObjectsDeleted, versions); err != nil {
			return err
		}
		ok = true
		return loadStores(ctx, tx, &d)
	})
	return d, ok, err
}

// CompletePurge stores the certificate of a purge whose stores have all reported, and deletes
// what is left of the owner's inbox. ok is false when it was already completed.
func (s *Store) CompletePurge(ctx context.Context, o owner.ID, id uuid.UUID, cert lifecycle.Certificate, now time.Time) (ok bool, err error) {
	err = s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		var pending int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM purge_stores WHERE owner_id = $1 AND deletion_id = $2 AND done_at IS NULL`,
			o, id).Scan(&pending); err != nil {
			return err
		}
		if pending != 0 {
			return fmt.Errorf("complete purge: %d stores have not reported", pending)
		}
		tag, err := tx.Exec(ctx, `UPDATE deletions SET state = 'completed', completed_at = $3, cert_payload = $4,
				cert_signature = $5, cert_key_id = $6
			WHERE owner_id = $1 AND id = $2 AND state = 'purging'`, o, id, now, cert.Payload, cert.Signature, cert.KeyID)
		if err != nil {
			return err
		}
		ok = tag.RowsAffected() == 1
		return nil
	})
	return ok, err
}
