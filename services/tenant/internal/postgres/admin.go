package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

// LookupHomeRegion reads the region directory. It answers for tenants homed anywhere: it is
// how a caller learns where to send a request.
func (s *Store) LookupHomeRegion(ctx context.Context, id owner.ID) (owner.Region, error) {
	var home string
	if err := s.db.QueryRow(ctx, id, sqlDirectoryHome, id).Scan(&home); err != nil {
		return "", notFound(err, tenant.ErrTenantNotFound, "lookup home region")
	}
	return owner.Region(home), nil
}

// ChangePlan sets a tenant's plan (billing).
func (s *Store) ChangePlan(ctx context.Context, id owner.ID, plan tenant.Plan) (tenant.Account, error) {
	var acct tenant.Account
	err := s.db.Tx(s.ownerCtx(ctx, id), id, func(ctx context.Context, tx database.Tx) error {
		if err := s.checkHome(ctx, tx, id); err != nil {
			return err
		}
		cur, err := scanAccount(tx.QueryRow(ctx, sqlSelectAccountForUpdate, id))
		if err != nil {
			return notFound(err, tenant.ErrTenantNotFound, "change plan")
		}
		if err := tenant.CheckPlanChange(cur.HomeRegion, plan); err != nil {
			return err
		}
		acct, err = scanAccount(tx.QueryRow(ctx, sqlUpdatePlan, id, string(plan), s.clock()))
		if err != nil {
			return fmt.Errorf("change plan: %w", err)
		}
		return nil
	})
	return acct, err
}

// ResolveEmail finds the oldest active tenant that signed up with email (case-insensitive),
// through the reviewed definer function, and reads its plan as that tenant.
func (s *Store) ResolveEmail(ctx context.Context, email string) (owner.ID, tenant.Plan, error) {
	var found pgtype.UUID
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, sqlResolveEmail, email).Scan(&found)
	})
	if err != nil {
		return owner.ID{}, "", fmt.Errorf("resolve email: %w", err)
	}
	if !found.Valid {
		return owner.ID{}, "", tenant.ErrEmailNotFound
	}
	id, err := owner.Parse(uuid.UUID(found.Bytes).String())
	if err != nil {
		return owner.ID{}, "", fmt.Errorf("resolve email: %w", err)
	}
	var plan string
	if err := s.db.QueryRow(ctx, id, sqlSelectActivePlan, id).Scan(&plan); err != nil {
		// The tenant left active status between the two reads.
		return owner.ID{}, "", notFound(err, tenant.ErrEmailNotFound, "resolve email: plan")
	}
	return id, tenant.Plan(plan), nil
}

// DisableTenant makes a tenant deletion_pending and revokes every live session, announcing
// both. Calling it again revokes the sessions opened since (a pending tenant may sign in to
// cancel) and announces no second status change.
func (s *Store) DisableTenant(ctx context.Context, id owner.ID) (int, error) {
	var revoked int
	err := s.db.Tx(s.ownerCtx(ctx, id), id, func(ctx context.Context, tx database.Tx) error {
		if err := s.checkHome(ctx, tx, id); err != nil {
			return err
		}
		cur, err := scanAccount(tx.QueryRow(ctx, sqlSelectAccountForUpdate, id))
		if err != nil {
			return notFound(err, tenant.ErrTenantNotFound, "disable tenant")
		}
		if cur.Status != tenant.StatusDeletionPending {
			if err := s.setStatus(ctx, tx, id, tenant.StatusDeletionPending); err != nil {
				return err
			}
		}
		revoked, err = s.revokeAll(ctx, tx, id)
		return err
	})
	return revoked, err
}

// RestoreTenant returns a deletion_pending tenant to active (the owner cancelled).
func (s *Store) RestoreTenant(ctx context.Context, id owner.ID) error {
	return s.db.Tx(s.ownerCtx(ctx, id), id, func(ctx context.Context, tx database.Tx) error {
		if err := s.checkHome(ctx, tx, id); err != nil {
			return err
		}
		cur, err := scanAccount(tx.QueryRow(ctx, sqlSelectAccountForUpdate, id))
		if err != nil {
			return notFound(err, tenant.ErrTenantNotFound, "restore tenant")
		}
		if cur.Status == tenant.StatusActive {
			return nil
		}
		return s.setStatus(ctx, tx, id, tenant.StatusActive)
	})
}

func (s *Store) setStatus(ctx context.Context, tx database.Tx, id owner.ID, st tenant.Status) error {
	if _, err := tx.Exec(ctx, sqlUpdateStatus, id, string(st), s.clock()); err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	return s.announceStatus(ctx, tx, id, st)
}

func (s *Store) announceStatus(ctx context.Context, tx database.Tx, id owner.ID, st tenant.Status) error {
	if _, err := s.outbox.Enqueue(ctx, tx, &eventsv1.AccountStatusChanged{
		Meta: &eventsv1.EventMeta{OwnerId: id.String()}, Status: string(st),
	}); err != nil {
		return fmt.Errorf("announce status: %w", err)
	}
	return nil
}

// exportPage is how many ledger entries one export read holds.
const exportPage = 500

// Export hands the account, then every ledger entry oldest first, to the callbacks. It reads
// a page at a time and calls the callbacks outside any transaction, so a slow reader holds no
// connection and memory does not grow with the ledger.
func (s *Store) Export(ctx context.Context, id owner.ID, account func(tenant.Account) error, entry func(tenant.CreditEntry) error) error {
	var acct tenant.Account
	err := s.db.TxWith(s.ownerCtx(ctx, id), id, database.TxOptions{ReadOnly: true}, func(ctx context.Context, tx database.Tx) error {
		if err := s.checkHome(ctx, tx, id); err != nil {
			return err
		}
		var err error
		acct, err = scanAccount(tx.QueryRow(ctx, sqlSelectAccount, id))
		return notFoundOrNil(err, tenant.ErrTenantNotFound, "export: account")
	})
	if err != nil {
		return err
	}
	if err := account(acct); err != nil {
		return err
	}
	var after int64
	for {
		page, err := s.readEntries(ctx, id, sqlEntriesAfter, after, exportPage)
		if err != nil {
			return fmt.Errorf("export: entries: %w", err)
		}
		for _, e := range page {
			if err := entry(e); err != nil {
				return err
			}
		}
		if len(page) < exportPage {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

func notFoundOrNil(err error, nf error, what string) error {
	if err == nil {
		return nil
	}
	return notFound(err, nf, what)
}

// DefaultPurgeBatch is the batch size of a purge that names none.
const DefaultPurgeBatch = 1000

// PurgeResult is the outcome of one purge batch.
type PurgeResult struct {
	RowsDeleted int64
	// Done is set when nothing of the tenant remains (the account included).
	Done bool
}

// purgeSteps are the tenant's rows in the order the purge deletes them: children first.
var purgeSteps = []string{sqlPurgeSessions, sqlPurgeEntries, sqlPurgeIdentities, sqlPurgeInbox, sqlPurgeDeadLetters}

// PurgeBatch deletes at most limit rows of a deletion_pending tenant, in one transaction.
// When it finds nothing left but the account, it removes the account, its balance and its
// directory entry, announces the status "purged", and (when completed is not nil) enqueues
// the event completed builds from this batch's count, all in the same transaction. A tenant
// already gone is done with 0 rows, so a repeated purge is harmless; an active tenant is
// refused (a cancelled deletion is never purged).
//
// The purge keeps no tombstone: what a deletion certificate needs is kept by data-lifecycle.
func (s *Store) PurgeBatch(ctx context.Context, id owner.ID, limit int, completed func(rows int64) events.Event) (PurgeResult, error) {
	if limit <= 0 {
		limit = DefaultPurgeBatch
	}
	var res PurgeResult
	err := s.db.Tx(s.ownerCtx(ctx, id), id, func(ctx context.Context, tx database.Tx) error {
		res = PurgeResult{}
		var home string
		err := tx.QueryRow(ctx, sqlDirectoryHome, id).Scan(&home)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Gone already (or never here): nothing to delete.
		case err != nil:
			return fmt.Errorf("purge: region directory: %w", err)
		case owner.Region(home) != s.region:
			return tenant.WrongRegion(owner.Region(home), s.region)
		}
		var status string
		err = tx.QueryRow(ctx, `SELECT status FROM accounts WHERE owner_id = $1 FOR UPDATE`, id).Scan(&status)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			status = ""
		case err != nil:
			return fmt.Errorf("purge: read account: %w", err)
		case tenant.Status(status) != tenant.StatusDeletionPending:
			return tenant.ErrNotPendingDeletion
		}
		budget := int64(limit)
		for _, q := range purgeSteps {
			tag, err := tx.Exec(ctx, q, id, budget)
			if err != nil {
				return fmt.Errorf("purge: %w", err)
			}
			res.RowsDeleted += tag.RowsAffected()
			budget -= tag.RowsAffected()
			if budget == 0 {
				return nil // the batch is full; children may remain
			}
		}
		for _, q := range []string{sqlPurgeBalance, sqlPurgeAccount, sqlPurgeDirectory} {
			tag, err := tx.Exec(ctx, q, id)
			if err != nil {
				return fmt.Errorf("purge: %w", err)
			}
			res.RowsDeleted += tag.RowsAffected()
		}
		res.Done = true
		if status != "" {
			if err := s.announceStatus(ctx, tx, id, tenant.StatusPurged); err != nil {
				return err
			}
		}
		if completed != nil {
			if _, err := s.outbox.Enqueue(ctx, tx, completed(res.RowsDeleted)); err != nil {
				return fmt.Errorf("purge: announce completion: %w", err)
			}
		}
		return nil
	})
	return res, err
}
