// Package postgres is the sandbox origin's storage: view tickets (as hashes), the account
// status of owners, and the audit of the secret proxy, each in the owner's transaction.
package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
)

// Schema is the sandbox origin's schema.
const Schema = "sandbox"

// SourceName names the migration source.
const SourceName = "sandbox"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded goose migrations.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic("postgres: embedded migrations: " + err.Error())
	}
	return sub
}

// Store reads and writes the sandbox schema.
type Store struct {
	DB *database.DB
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// MaxOpenTickets bounds the unexpired tickets of one app's owner, so a caller cannot fill the
// table.
const MaxOpenTickets = 1000

// ErrTooManyTickets is returned by IssueTicket past MaxOpenTickets.
var ErrTooManyTickets = errors.New("too many open view tickets")

const (
	sqlDeleteExpiredTickets = `DELETE FROM view_tickets WHERE owner_id = $1 AND expire_time <= $2`
	sqlCountTickets         = `SELECT count(*) FROM view_tickets WHERE owner_id = $1`
	sqlInsertTicket         = `INSERT INTO view_tickets (owner_id, ticket_hash, app_id, viewer_id, expire_time)
		VALUES ($1, $2, $3, $4, $5)`
	sqlRedeemTicket = `DELETE FROM view_tickets WHERE owner_id = $1 AND ticket_hash = $2
		RETURNING app_id, viewer_id, expire_time`
)

// IssueTicket stores a ticket hash for app (owned by appOwner) and viewer, first clearing the
// owner's expired tickets.
func (s *Store) IssueTicket(ctx context.Context, appOwner owner.ID, hash [sha256.Size]byte, app uuid.UUID, viewer owner.ID, expiry time.Time) error {
	return s.DB.Tx(ctx, appOwner, func(ctx context.Context, tx database.Tx) error {
		if _, err := tx.Exec(ctx, sqlDeleteExpiredTickets, appOwner, s.now()); err != nil {
			return fmt.Errorf("clear expired tickets: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, sqlCountTickets, appOwner).Scan(&n); err != nil {
			return fmt.Errorf("count tickets: %w", err)
		}
		if n >= MaxOpenTickets {
			return ErrTooManyTickets
		}
		if _, err := tx.Exec(ctx, sqlInsertTicket, appOwner, hash[:], app, viewer, expiry); err != nil {
			return fmt.Errorf("insert ticket: %w", err)
		}
		return nil
	})
}

// Redeem deletes the ticket and returns it (origin.ErrNoTicket when there is none). The
// delete is the one-time use: two replicas redeeming the same ticket at once cannot both get
// the row.
func (s *Store) Redeem(ctx context.Context, appOwner owner.ID, hash [sha256.Size]byte) (origin.Ticket, error) {
	var t origin.Ticket
	var viewer uuid.UUID
	err := s.DB.Tx(ctx, appOwner, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, sqlRedeemTicket, appOwner, hash[:]).Scan(&t.App, &viewer, &t.Expiry)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return origin.Ticket{}, origin.ErrNoTicket
	}
	if err != nil {
		return origin.Ticket{}, fmt.Errorf("redeem ticket: %w", err)
	}
	if t.Viewer, err = owner.Parse(viewer.String()); err != nil {
		return origin.Ticket{}, fmt.Errorf("redeem ticket: %w", err)
	}
	return t, nil
}

// Account statuses (tenant's words).
const (
	StatusActive          = "active"
	StatusDeletionPending = "deletion_pending"
	StatusPurged          = "purged"
)

const (
	sqlUpsertStatus = `INSERT INTO owner_status (owner_id, status, status_time) VALUES ($1, $2, $3)
		ON CONFLICT (owner_id) DO UPDATE SET status = EXCLUDED.status, status_time = EXCLUDED.status_time
		WHERE owner_status.status_time <= EXCLUDED.status_time`
	sqlDeleteStatus = `DELETE FROM owner_status WHERE owner_id = $1`
	sqlStatus       = `SELECT status FROM owner_status WHERE owner_id = $1`
)

// RecordStatus records an owner's account status as of at; an older announcement than the
// recorded one changes nothing, so replaying events in any order converges. `purged` is the
// exception: it records nothing and deletes the owner's status, because it usually arrives
// after this service's own purge, which left no row of the owner and must stay that way. A
// purged owner's apps are refused without it: apps refused the owner from the deletion request
// on and holds nothing of it after the purge.
func (s *Store) RecordStatus(ctx context.Context, tx database.Tx, o owner.ID, status string, at time.Time) error {
	q, args := sqlUpsertStatus, []any{o, status, at}
	switch status {
	case StatusActive, StatusDeletionPending:
	case StatusPurged:
		q, args = sqlDeleteStatus, []any{o}
	default:
		return fmt.Errorf("record status: unknown status %q", status)
	}
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("record status: %w", err)
	}
	return nil
}

// Served reports whether an owner's apps may be served: not when the account is being deleted
// (a purged owner has no row here, and nothing left at apps to serve).
func (s *Store) Served(ctx context.Context, o owner.ID) (bool, error) {
	var status string
	err := s.DB.QueryRow(ctx, o, sqlStatus, o).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("owner status: %w", err)
	}
	return status == StatusActive, nil
}

const sqlInsertCall = `INSERT INTO proxy_calls (owner_id, id, app_id, secret_name, upstream_host, method, caller,
	status, outcome, request_bytes, response_bytes, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

// AuditCall records one proxied call.
func (s *Store) AuditCall(ctx context.Context, r proxy.Record) error {
	return s.AuditCalls(ctx, r.Owner, []proxy.Record{r})
}

// AuditCalls records proxied calls of one owner in one transaction.
func (s *Store) AuditCalls(ctx context.Context, o owner.ID, recs []proxy.Record) error {
	return s.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		for _, r := range recs {
			if r.Owner != o {
				return fmt.Errorf("audit proxy call: record of another owner")
			}
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, sqlInsertCall, o, id, r.App, r.SecretName, r.UpstreamHost, r.Method, r.Caller,
				r.Status, r.Outcome, r.RequestBytes, r.ResponseBytes, r.Duration.Milliseconds())
			if err != nil {
				return fmt.Errorf("audit proxy call: %w", err)
			}
		}
		return nil
	})
}

// PurgeOwner deletes every row of the owner in the schema, the inbox included, and returns the
// count.
func (s *Store) PurgeOwner(ctx context.Context, tx database.Tx, o owner.ID) (int64, error) {
	var n int64
	for _, q := range []string{
		`DELETE FROM view_tickets WHERE owner_id = $1`,
		`DELETE FROM proxy_calls WHERE owner_id = $1`,
		sqlDeleteStatus,
	} {
		tag, err := tx.Exec(ctx, q, o)
		if err != nil {
			return n, fmt.Errorf("purge: %w", err)
		}
		n += tag.RowsAffected()
	}
	return n, nil
}
