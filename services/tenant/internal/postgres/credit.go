package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

// Grant adds credits to a tenant named by a system caller (billing): the region directory is
// checked first, in the same transaction, so a tenant homed elsewhere gets nothing written.
func (s *Store) Grant(ctx context.Context, ownerID owner.ID, req tenant.LedgerRequest) (tenant.CreditEntry, error) {
	if req.Amount <= 0 {
		return tenant.CreditEntry{}, errNotGrant
	}
	return s.ledger(ctx, ownerID, req, true)
}

// Debit removes credits from the owner's balance, never below zero. The owner comes from the
// verified owner context (the builder workload asserts it).
func (s *Store) Debit(ctx context.Context, ownerID owner.ID, req tenant.LedgerRequest) (tenant.CreditEntry, error) {
	if req.Amount >= 0 {
		return tenant.CreditEntry{}, errNotDebit
	}
	return s.ledger(ctx, ownerID, req, false)
}

var (
	errNotGrant = fault.InvalidField("amount", "a grant adds a positive amount")
	errNotDebit = fault.InvalidField("amount", "a debit removes a positive amount")
)

// ledger applies one grant or debit, at most once per idempotency key.
//
// Every ledger write of a tenant first locks the tenant's balance row, so they run one after
// the other: the balance read under the lock is the balance changed, and a key recorded by a
// concurrent retry is visible once the lock is ours (READ COMMITTED takes a fresh snapshot
// per statement). The balance's CHECK (>= 0) is the net under the code's own test.
func (s *Store) ledger(ctx context.Context, ownerID owner.ID, req tenant.LedgerRequest, checkHome bool) (tenant.CreditEntry, error) {
	if err := req.Validate(); err != nil {
		return tenant.CreditEntry{}, err
	}
	var entry tenant.CreditEntry
	err := s.db.Tx(ctx, ownerID, func(ctx context.Context, tx database.Tx) error {
		if checkHome {
			if err := s.checkHome(ctx, tx, ownerID); err != nil {
				return err
			}
		}
		var (
			balance int64
			status  string
		)
		if err := tx.QueryRow(ctx, sqlLockBalance, ownerID).Scan(&balance, &status); err != nil {
			return notFound(err, tenant.ErrAccountNotFound, "ledger: lock balance")
		}
		existing, err := scanEntry(tx.QueryRow(ctx, sqlEntryByKey, ownerID, req.IdempotencyKey))
		switch {
		case err == nil:
			entry, err = req.Replay(existing)
			return err
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("ledger: read key: %w", err)
		}
		if tenant.Status(status) != tenant.StatusActive {
			return tenant.ErrPendingDeletion
		}
		if balance+req.Amount < 0 {
			return tenant.ErrInsufficientCredits
		}
		now := s.clock()
		var seq int64
		if err := tx.QueryRow(ctx, sqlApplyToBalance, ownerID, req.Amount, now).Scan(&balance, &seq); err != nil {
			return fmt.Errorf("ledger: apply: %w", err)
		}
		entry = tenant.CreditEntry{
			ID: uuid.New(), Seq: seq, Amount: req.Amount, Reason: req.Reason, BalanceAfter: balance, CreateTime: now,
		}
		if _, err := tx.Exec(ctx, sqlInsertEntry, ownerID, entry.ID, entry.Seq, entry.Amount, entry.Reason,
			req.IdempotencyKey, entry.BalanceAfter, entry.CreateTime); err != nil {
			return fmt.Errorf("ledger: insert entry: %w", err)
		}
		return nil
	})
	return entry, err
}

func scanEntry(row pgx.Row) (tenant.CreditEntry, error) {
	var e tenant.CreditEntry
	if err := row.Scan(&e.ID, &e.Seq, &e.Amount, &e.Reason, &e.BalanceAfter, &e.CreateTime); err != nil {
		return tenant.CreditEntry{}, err
	}
	e.CreateTime = e.CreateTime.UTC()
	return e, nil
}

func collectEntries(rows pgx.Rows) ([]tenant.CreditEntry, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenant.CreditEntry, error) { return scanEntry(r) })
}

// Balance returns the owner's balance and its most recent entries, newest first.
func (s *Store) Balance(ctx context.Context, ownerID owner.ID) (int64, []tenant.CreditEntry, error) {
	var (
		balance int64
		recent  []tenant.CreditEntry
	)
	err := s.db.TxWith(ctx, ownerID, database.TxOptions{ReadOnly: true}, func(ctx context.Context, tx database.Tx) error {
		if err := tx.QueryRow(ctx, sqlSelectBalance, ownerID).Scan(&balance); err != nil {
			return notFound(err, tenant.ErrAccountNotFound, "balance")
		}
		rows, err := tx.Query(ctx, sqlEntriesBefore, ownerID, int64(0), tenant.RecentEntries)
		if err != nil {
			return fmt.Errorf("balance: recent entries: %w", err)
		}
		recent, err = collectEntries(rows)
		return err
	})
	return balance, recent, err
}

// ListEntries returns one page of the owner's ledger, newest first, and the token of the
// next page ("" at the end).
func (s *Store) ListEntries(ctx context.Context, ownerID owner.ID, pageSize int, pageToken string) ([]tenant.CreditEntry, string, error) {
	tok, err := tenant.DecodePageToken(pageToken, ownerID)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.readEntries(ctx, ownerID, sqlEntriesBefore, tok.BeforeSeq, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("list entries: %w", err)
	}
	if len(rows) <= pageSize {
		return rows, "", nil
	}
	rows = rows[:pageSize]
	return rows, tenant.PageToken{BeforeSeq: rows[len(rows)-1].Seq}.Encode(ownerID), nil
}

func (s *Store) readEntries(ctx context.Context, ownerID owner.ID, query string, seq int64, limit int) ([]tenant.CreditEntry, error) {
	var out []tenant.CreditEntry
	err := s.db.TxWith(ctx, ownerID, database.TxOptions{ReadOnly: true}, func(ctx context.Context, tx database.Tx) error {
		rows, err := tx.Query(ctx, query, ownerID, seq, limit)
		if err != nil {
			return err
		}
		out, err = collectEntries(rows)
		return err
	})
	return out, err
}
