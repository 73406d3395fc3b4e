package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/forgeapps/backbone/pkg/database"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

// insertSession stores a new session (its token's hash only) and returns it with the token.
func (s *Store) insertSession(ctx context.Context, tx database.Tx, ownerID owner.ID, userAgent string, now time.Time) (tenant.Session, secret.Value, error) {
	tok, hash, err := tenant.NewSessionToken()
	if err != nil {
		return tenant.Session{}, secret.Value{}, err
	}
	sess := tenant.Session{ID: uuid.New(), CreateTime: now, ExpireTime: now.Add(s.ttl), UserAgent: userAgent}
	if _, err := tx.Exec(ctx, sqlInsertSession, ownerID, sess.ID, hash[:], userAgent, sess.CreateTime, sess.ExpireTime); err != nil {
		return tenant.Session{}, secret.Value{}, fmt.Errorf("insert session: %w", err)
	}
	return sess, tok, nil
}

// Authenticate resolves a session token to its live session, owner, home region and account
// status. An unknown, malformed, expired or revoked token, or one whose account is gone, all
// get tenant.ErrInvalidSession and nothing else.
func (s *Store) Authenticate(ctx context.Context, tok secret.Value) (tenant.AuthenticatedSession, error) {
	hash, err := tenant.ParseSessionToken(tok)
	if err != nil {
		return tenant.AuthenticatedSession{}, err
	}
	var (
		ownerUUID uuid.UUID
		as        tenant.AuthenticatedSession
	)
	err = s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, sqlSessionAuthenticate, hash[:], s.clock()).Scan(&ownerUUID, &as.SessionID, &as.ExpireTime)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return tenant.AuthenticatedSession{}, tenant.ErrInvalidSession
	}
	if err != nil {
		return tenant.AuthenticatedSession{}, fmt.Errorf("authenticate: %w", err)
	}
	if as.OwnerID, err = owner.Parse(ownerUUID.String()); err != nil {
		return tenant.AuthenticatedSession{}, fmt.Errorf("authenticate: %w", err)
	}
	if err := s.authenticatedAccount(ctx, &as, tenant.ErrInvalidSession); err != nil {
		return tenant.AuthenticatedSession{}, err
	}
	as.ExpireTime = as.ExpireTime.UTC()
	return as, nil
}

// AuthenticateIdentity resolves an identity the edge verified (an OIDC ID token) to the
// tenant it signed up, without a session. It never creates a tenant or a session and writes
// nothing: an identity without a tenant is tenant.ErrNoTenantForIdentity.
func (s *Store) AuthenticateIdentity(ctx context.Context, id tenant.Identity) (tenant.AuthenticatedSession, error) {
	ownerID, found, err := s.lookupIdentity(ctx, id)
	if err != nil {
		return tenant.AuthenticatedSession{}, err
	}
	if !found {
		return tenant.AuthenticatedSession{}, tenant.ErrNoTenantForIdentity
	}
	as := tenant.AuthenticatedSession{OwnerID: ownerID}
	if err := s.authenticatedAccount(ctx, &as, tenant.ErrNoTenantForIdentity); err != nil {
		return tenant.AuthenticatedSession{}, err
	}
	return as, nil
}

// authenticatedAccount fills the status and home region of an authenticated owner, refusing
// with refusal an account that is gone, not usable or not homed here.
func (s *Store) authenticatedAccount(ctx context.Context, as *tenant.AuthenticatedSession, refusal error) error {
	var status, region string
	err := s.db.QueryRow(ctx, as.OwnerID, sqlSelectStatusRegion, as.OwnerID).Scan(&status, &region)
	if errors.Is(err, pgx.ErrNoRows) {
		return refusal
	}
	if err != nil {
		return fmt.Errorf("authenticate: read account: %w", err)
	}
	as.Status, as.HomeRegion = tenant.Status(status), owner.Region(region)
	if (as.Status != tenant.StatusActive && as.Status != tenant.StatusDeletionPending) || as.HomeRegion != s.region {
		return refusal
	}
	return nil
}

// ListSessions lists the owner's live sessions, newest first.
func (s *Store) ListSessions(ctx context.Context, ownerID owner.ID) ([]tenant.Session, error) {
	var out []tenant.Session
	err := s.db.TxWith(ctx, ownerID, database.TxOptions{ReadOnly: true}, func(ctx context.Context, tx database.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, sqlListSessions, ownerID, s.clock())
		if err != nil {
			return err
		}
		var sess tenant.Session
		_, err = pgx.ForEachRow(rows, []any{&sess.ID, &sess.CreateTime, &sess.ExpireTime, &sess.UserAgent}, func() error {
			sess.CreateTime, sess.ExpireTime = sess.CreateTime.UTC(), sess.ExpireTime.UTC()
			out = append(out, sess)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// RevokeSession ends one live session of the owner. A session that is another tenant's,
// unknown, expired or already revoked is tenant.ErrSessionNotFound, alike.
func (s *Store) RevokeSession(ctx context.Context, ownerID owner.ID, sessionID uuid.UUID) error {
	return s.db.Tx(ctx, ownerID, func(ctx context.Context, tx database.Tx) error {
		var id uuid.UUID
		err := tx.QueryRow(ctx, sqlRevokeSession, ownerID, sessionID, s.clock()).Scan(&id)
		if err != nil {
			return notFound(err, tenant.ErrSessionNotFound, "revoke session")
		}
		return s.announceRevoked(ctx, tx, ownerID, []uuid.UUID{id}, false)
	})
}

// RevokeAllSessions ends every live session of the owner and returns how many.
func (s *Store) RevokeAllSessions(ctx context.Context, ownerID owner.ID) (int, error) {
	var n int
	err := s.db.Tx(ctx, ownerID, func(ctx context.Context, tx database.Tx) error {
		var err error
		n, err = s.revokeAll(ctx, tx, ownerID)
		return err
	})
	return n, err
}

func (s *Store) revokeAll(ctx context.Context, tx database.Tx, ownerID owner.ID) (int, error) {
	rows, err := tx.Query(ctx, sqlRevokeAllSessions, ownerID, s.clock())
	if err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	return len(ids), s.announceRevoked(ctx, tx, ownerID, nil, true)
}

// announceRevoked writes the SessionsRevoked event that tells every edge replica to drop
// the sessions from its cache, in the transaction that revoked them.
func (s *Store) announceRevoked(ctx context.Context, tx database.Tx, ownerID owner.ID, ids []uuid.UUID, all bool) error {
	ev := &eventsv1.SessionsRevoked{Meta: &eventsv1.EventMeta{OwnerId: ownerID.String()}, All: all}
	for _, id := range ids {
		ev.SessionIds = append(ev.SessionIds, id.String())
	}
	if _, err := s.outbox.Enqueue(ctx, tx, ev); err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	return nil
}
