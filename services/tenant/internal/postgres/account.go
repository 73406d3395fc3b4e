package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/forgeapps/backbone/pkg/database"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

// SignInResult is a new session and the account it belongs to.
type SignInResult struct {
	// Token is the session token, returned to the edge once and never stored.
	Token   secret.Value
	Session tenant.Session
	Account tenant.Account
	// Created is set when this sign-in created the tenant.
	Created bool
}

// SignIn opens a session for the tenant an identity signs in to, creating the tenant on the
// identity's first sign-in with a fresh random owner_id and the sign-up's plan and region.
// The sign-up is checked only when it creates a tenant; a returning identity ignores it.
func (s *Store) SignIn(ctx context.Context, id tenant.Identity, up tenant.SignUp, userAgent string) (SignInResult, error) {
	userAgent = tenant.CleanUserAgent(userAgent)
	// Two rounds at most: a concurrent first sign-in of the same identity makes our insert
	// collide on identities_issuer_subject_key, and the second lookup then finds its tenant.
	for range 2 {
		ownerID, found, err := s.lookupIdentity(ctx, id)
		if err != nil {
			return SignInResult{}, err
		}
		if found {
			return s.signInExisting(ctx, ownerID, id, userAgent)
		}
		complete, err := up.Complete(s.region)
		if err != nil {
			return SignInResult{}, err
		}
		res, err := s.createTenant(ctx, id, complete, userAgent)
		if isUniqueViolation(err, "identities_issuer_subject_key") {
			continue
		}
		return res, err
	}
	return SignInResult{}, errors.New("sign in: identity created and not found")
}

// lookupIdentity finds the owner of an identity through the reviewed definer function: no
// owner is known yet, so RLS would (rightly) show nothing.
func (s *Store) lookupIdentity(ctx context.Context, id tenant.Identity) (owner.ID, bool, error) {
	var found pgtype.UUID
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, sqlIdentityOwner, id.Issuer, id.Subject).Scan(&found)
	})
	if err != nil {
		return owner.ID{}, false, fmt.Errorf("sign in: look up identity: %w", err)
	}
	if !found.Valid {
		return owner.ID{}, false, nil
	}
	o, err := owner.Parse(uuid.UUID(found.Bytes).String())
	if err != nil {
		return owner.ID{}, false, fmt.Errorf("sign in: identity owner: %w", err)
	}
	return o, true, nil
}

func (s *Store) signInExisting(ctx context.Context, ownerID owner.ID, id tenant.Identity, userAgent string) (SignInResult, error) {
	var res SignInResult
	err := s.db.Tx(s.ownerCtx(ctx, ownerID), ownerID, func(ctx context.Context, tx database.Tx) error {
		acct, err := scanAccount(tx.QueryRow(ctx, sqlSelectAccountForUpdate, ownerID))
		if err != nil {
			return notFound(err, tenant.ErrAccountNotFound, "sign in: read account")
		}
		if acct.HomeRegion != s.region {
			// Only a misconfigured instance could hold such a row; never serve it from here.
			return tenant.WrongRegion(acct.HomeRegion, s.region)
		}
		now := s.clock()
		if acct.Email != id.Email {
			// The issuer verified this email just now: it is the person's email from here on.
			if _, err := tx.Exec(ctx, sqlUpdateEmail, ownerID, id.Email, now); err != nil {
				return fmt.Errorf("sign in: update email: %w", err)
			}
			acct.Email, acct.UpdateTime = id.Email, now
		}
		sess, tok, err := s.insertSession(ctx, tx, ownerID, userAgent, now)
		if err != nil {
			return err
		}
		res = SignInResult{Token: tok, Session: sess, Account: acct}
		return nil
	})
	return res, err
}

func (s *Store) createTenant(ctx context.Context, id tenant.Identity, up tenant.SignUp, userAgent string) (SignInResult, error) {
	// A fresh random owner: never derived from the email or the subject.
	ownerID := owner.New()
	var res SignInResult
	err := s.db.Tx(s.ownerCtx(ctx, ownerID), ownerID, func(ctx context.Context, tx database.Tx) error {
		now := s.clock()
		b := &pgx.Batch{}
		b.Queue(sqlInsertAccount, ownerID, id.Email, string(up.Plan), up.HomeRegion.String(), now)
		b.Queue(sqlInsertIdentity, ownerID, id.Issuer, id.Subject, now)
		b.Queue(sqlInsertBalance, ownerID, now)
		b.Queue(sqlInsertDirectory, ownerID, up.HomeRegion.String())
		if err := execBatch(ctx, tx, b); err != nil {
			return fmt.Errorf("sign in: create tenant: %w", err)
		}
		sess, tok, err := s.insertSession(ctx, tx, ownerID, userAgent, now)
		if err != nil {
			return err
		}
		if _, err := s.outbox.Enqueue(ctx, tx, &eventsv1.AccountCreated{
			Meta: &eventsv1.EventMeta{OwnerId: ownerID.String()},
			Plan: string(up.Plan),
		}); err != nil {
			return fmt.Errorf("sign in: %w", err)
		}
		res = SignInResult{
			Token:   tok,
			Session: sess,
			Account: tenant.Account{
				OwnerID: ownerID, Email: id.Email, Plan: up.Plan, HomeRegion: up.HomeRegion,
				Status: tenant.StatusActive, CreateTime: now, UpdateTime: now,
			},
			Created: true,
		}
		return nil
	})
	return res, err
}

// execBatch sends a batch of statements and reads every result.
func execBatch(ctx context.Context, tx database.Tx, b *pgx.Batch) error {
	br := tx.SendBatch(ctx, b)
	var err error
	for range b.Len() {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// GetAccount reads the owner's account (one round trip).
func (s *Store) GetAccount(ctx context.Context, ownerID owner.ID) (tenant.Account, error) {
	acct, err := scanAccount(s.db.QueryRow(ctx, ownerID, sqlSelectAccount, ownerID))
	if err != nil {
		return tenant.Account{}, notFound(err, tenant.ErrAccountNotFound, "get account")
	}
	return acct, nil
}

// UpdateAccount changes the owner-editable fields of an active account.
func (s *Store) UpdateAccount(ctx context.Context, ownerID owner.ID, u tenant.AccountUpdate) (tenant.Account, error) {
	if err := u.Validate(); err != nil {
		return tenant.Account{}, err
	}
	var acct tenant.Account
	err := s.db.Tx(ctx, ownerID, func(ctx context.Context, tx database.Tx) error {
		cur, err := scanAccount(tx.QueryRow(ctx, sqlSelectAccountForUpdate, ownerID))
		if err != nil {
			return notFound(err, tenant.ErrAccountNotFound, "update account")
		}
		if cur.Status != tenant.StatusActive {
			return tenant.ErrPendingDeletion
		}
		acct, err = scanAccount(tx.QueryRow(ctx, sqlUpdateAccount, ownerID, u.DisplayName, u.NotificationEmail, s.clock()))
		if err != nil {
			return fmt.Errorf("update account: %w", err)
		}
		return nil
	})
	return acct, err
}
