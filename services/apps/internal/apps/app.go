package apps

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// AppInput is what a person types for an app.
type AppInput struct {
	Name        string
	Description string
}

// CreateApp creates a private app of the caller. The vault learns about it (RegisterApp)
// inside the same transaction, before the caller gets an answer.
func (s *Service) CreateApp(ctx context.Context, c Caller, in AppInput) (App, error) {
	if c.Owner.IsZero() {
		return App{}, fault.Unauthenticated("no verified owner")
	}
	now := s.clock()
	rec := AppRecord{ID: uuid.New(), Owner: c.Owner, Visibility: VisibilityPrivate, Created: now, Updated: now}
	if err := s.sealApp(ctx, &rec, in); err != nil {
		return App{}, err
	}
	if err := s.insertApp(ctx, rec); err != nil {
		return App{}, err
	}
	return App{ID: rec.ID, Owner: c.Owner, Name: in.Name, Description: in.Description, Visibility: rec.Visibility,
		Created: now, Updated: now, Role: RoleOwner}, nil
}

// insertApp stores a new app, registers it with the vault and announces it.
func (s *Service) insertApp(ctx context.Context, rec AppRecord) error {
	err := s.store.Tx(ctx, rec.Owner, func(ctx context.Context, tx StoreTx) error {
		if err := refuseDisabled(ctx, tx); err != nil {
			return err
		}
		if err := tx.InsertApp(ctx, rec); err != nil {
			return err
		}
		if err := tx.AppCreated(ctx, rec.ID); err != nil {
			return err
		}
		return s.registry.RegisterApp(ctx, rec.Owner, rec.ID)
	})
	if err != nil {
		// The registration may have outlived a failed commit; an app that does not exist
		// must not stay registered. Best effort: the vault also drops apps it never hears of
		// again only through UnregisterApp, so log a failure.
		if uerr := s.registry.UnregisterApp(context.WithoutCancel(ctx), rec.Owner, rec.ID); uerr != nil {
			s.log.WarnContext(ctx, "unregistering an app that was not created failed",
				slog.String("app_id", rec.ID.String()), slog.Any("error", uerr))
		}
		return err
	}
	return nil
}

// sealApp encrypts name and description into rec (one vault call).
func (s *Service) sealApp(ctx context.Context, rec *AppRecord, in AppInput) error {
	items := []CryptoItem{{Binding: appBinding(rec.ID, "name"), Data: []byte(in.Name)}}
	if in.Description != "" {
		items = append(items, CryptoItem{Binding: appBinding(rec.ID, "description"), Data: []byte(in.Description)})
	}
	cts, ver, err := s.crypto.Encrypt(ctx, rec.Owner, PurposeAppContent, items)
	if err != nil {
		return fmt.Errorf("seal app: %w", err)
	}
	rec.Name, rec.KeyVersion, rec.Description = cts[0], ver, nil
	if len(cts) > 1 {
		rec.Description = cts[1]
	}
	return nil
}

// openApps decrypts the names and descriptions of records of one owner in one vault call.
func (s *Service) openApps(ctx context.Context, o owner.ID, recs []AppRecord, role Role) ([]App, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	items := make([]CryptoItem, 0, 2*len(recs))
	for _, r := range recs {
		items = append(items, CryptoItem{Binding: appBinding(r.ID, "name"), Data: r.Name})
		if r.Description != nil {
			items = append(items, CryptoItem{Binding: appBinding(r.ID, "description"), Data: r.Description})
		}
	}
	pts, err := s.crypto.Decrypt(ctx, o, PurposeAppContent, items)
	if err != nil {
		return nil, fmt.Errorf("open apps: %w", err)
	}
	out := make([]App, len(recs))
	i := 0
	for n, r := range recs {
		a := App{ID: r.ID, Owner: r.Owner, Name: string(pts[i]), Visibility: r.Visibility,
			CurrentVersion: r.CurrentVersion, Created: r.Created, Updated: r.Updated, Role: role, Published: r.Published}
		i++
		if r.Description != nil {
			a.Description = string(pts[i])
			i++
		}
		out[n] = a
	}
	return out, nil
}

// GetApp returns an app to its owner, a collaborator or the builder.
func (s *Service) GetApp(ctx context.Context, c Caller, appID uuid.UUID) (App, error) {
	a, err := s.resolve(ctx, c, appID)
	if err != nil {
		return App{}, err
	}
	var rec AppRecord
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		rec, err = tx.App(ctx, appID, false)
		return err
	})
	if err != nil {
		return App{}, err
	}
	apps, err := s.openApps(ctx, a.Owner, []AppRecord{rec}, a.Role)
	if err != nil {
		return App{}, err
	}
	return apps[0], nil
}

// ListApps pages through the caller's own apps, newest first: one query and one batched
// decrypt per page.
func (s *Service) ListApps(ctx context.Context, c Caller, size int32, token string) ([]App, string, error) {
	if c.Owner.IsZero() {
		return nil, "", fault.Unauthenticated("no verified owner")
	}
	after, err := decodeToken(tokenApps, token)
	if err != nil {
		return nil, "", err
	}
	limit := pageSize(size)
	var recs []AppRecord
	err = s.store.Tx(ctx, c.Owner, func(ctx context.Context, tx StoreTx) error {
		if err := refuseDisabled(ctx, tx); err != nil {
			return err
		}
		recs, err = tx.Apps(ctx, after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(recs) > limit {
		recs = recs[:limit]
		last := recs[limit-1]
		next = encodeToken(tokenApps, Cursor{Time: last.Created, ID: last.ID})
	}
	apps, err := s.openApps(ctx, c.Owner, recs, RoleOwner)
	return apps, next, err
}

// ListSharedApps pages through the apps other tenants invited the caller to. Each app is read
// in its owner's transaction and decrypted under its owner's key (one vault call per owner on
// the page).
func (s *Service) ListSharedApps(ctx context.Context, c Caller, size int32, token string) ([]App, string, error) {
	if c.Owner.IsZero() || c.IsBuilder() {
		return nil, "", fault.Unauthenticated("no verified owner")
	}
	after, err := decodeToken(tokenShared, token)
	if err != nil {
		return nil, "", err
	}
	limit := pageSize(size)
	if err := s.store.Tx(ctx, c.Owner, refuseDisabled); err != nil {
		return nil, "", err
	}
	shared, err := s.store.SharedWithMe(ctx, c.Owner, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(shared) > limit {
		shared = shared[:limit]
		last := shared[limit-1]
		next = encodeToken(tokenShared, Cursor{Time: last.CollabCreate, ID: last.CollabID})
	}
	byOwner := map[owner.ID][]SharedApp{}
	var owners []owner.ID
	for _, sh := range shared {
		if _, ok := byOwner[sh.Owner]; !ok {
			owners = append(owners, sh.Owner)
		}
		byOwner[sh.Owner] = append(byOwner[sh.Owner], sh)
	}
	found := map[uuid.UUID]App{}
	for _, o := range owners {
		ids := make([]uuid.UUID, 0, len(byOwner[o]))
		roles := map[uuid.UUID]Role{}
		for _, sh := range byOwner[o] {
			ids = append(ids, sh.AppID)
			roles[sh.AppID] = sh.Role
		}
		var recs []AppRecord
		err := s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
			recs, err = tx.AppsByID(ctx, ids)
			return err
		})
		if err != nil {
			return nil, "", err
		}
		apps, err := s.openApps(ctx, o, recs, RoleViewer)
		if err != nil {
			return nil, "", err
		}
		for _, a := range apps {
			a.Role = roles[a.ID]
			found[a.ID] = a
		}
	}
	out := make([]App, 0, len(shared))
	for _, sh := range shared {
		if a, ok := found[sh.AppID]; ok {
			out = append(out, a)
		}
	}
	return out, next, nil
}

// AppPatch is an UpdateApp request: nil fields stay.
type AppPatch struct {
	Name        *string
	Description *string
	Visibility  Visibility
}

// UpdateApp changes name, description or visibility (owner only).
func (s *Service) UpdateApp(ctx context.Context, c Caller, appID uuid.UUID, p AppPatch) (App, error) {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return App{}, err
	}
	if p.Visibility == VisibilityPublic {
		return App{}, fault.FailedPrecondition("an app becomes public by publishing it")
	}
	var out App
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		rec, err := tx.App(ctx, appID, true)
		if err != nil {
			return err
		}
		cur, err := s.openApps(ctx, a.Owner, []AppRecord{rec}, RoleOwner)
		if err != nil {
			return err
		}
		in := AppInput{Name: cur[0].Name, Description: cur[0].Description}
		if p.Name != nil {
			in.Name = *p.Name
		}
		if p.Description != nil {
			in.Description = *p.Description
		}
		if p.Name != nil || p.Description != nil {
			if err := s.sealApp(ctx, &rec, in); err != nil {
				return err
			}
		}
		changed := p.Visibility != VisibilityUnspecified && p.Visibility != rec.Visibility
		if changed && rec.Visibility == VisibilityPublic {
			return fault.FailedPrecondition("unpublish the app to change its visibility")
		}
		if changed {
			rec.Visibility = p.Visibility
			if err := tx.AccessChanged(ctx, appID, AccessVisibilityChanged); err != nil {
				return err
			}
		}
		rec.Updated = s.clock()
		if err := tx.UpdateApp(ctx, rec); err != nil {
			return err
		}
		out = App{ID: rec.ID, Owner: a.Owner, Name: in.Name, Description: in.Description, Visibility: rec.Visibility,
			CurrentVersion: rec.CurrentVersion, Created: rec.Created, Updated: rec.Updated, Role: RoleOwner, Published: rec.Published}
		return nil
	})
	return out, err
}

// DeleteApp deletes an app with everything in it (owner only): its rows, its listing, its
// objects, and its secrets in the vault.
func (s *Service) DeleteApp(ctx context.Context, c Caller, appID uuid.UUID) error {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return err
	}
	var listingKeys []string
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if _, err := tx.App(ctx, appID, true); err != nil {
			return err
		}
		keys, _, err := tx.DeleteListing(ctx, appID)
		if err != nil {
			return err
		}
		listingKeys = keys
		if err := tx.DeleteApp(ctx, appID); err != nil {
			return err
		}
		if err := tx.AppDeleted(ctx, appID); err != nil {
			return err
		}
		if err := tx.AccessChanged(ctx, appID, AccessDeleted); err != nil {
			return err
		}
		// Inside the transaction: if the vault cannot drop the app's secrets, the app stays.
		return s.registry.UnregisterApp(ctx, a.Owner, appID)
	})
	if err != nil {
		return err
	}
	s.deleteObjects(ctx, listingKeys)
	s.deletePrefix(ctx, appPrefix(a.Owner, appID))
	return nil
}

// deleteObjects removes objects whose rows are gone. A failure leaves ciphertext (or a
// withdrawn listing's copy) that the owner's purge removes; it is logged, not returned,
// because the rows are already deleted.
func (s *Service) deleteObjects(ctx context.Context, keys []string) (failed bool) {
	ctx = context.WithoutCancel(ctx)
	for _, k := range keys {
		if err := s.blobs.Delete(ctx, k); err != nil {
			s.log.WarnContext(ctx, "deleting an object failed", slog.String("key", k), slog.Any("error", err))
			failed = true
		}
	}
	return failed
}

// deletePrefix removes every object under prefix, stopping at the first failure (the purge
// finishes the job).
func (s *Service) deletePrefix(ctx context.Context, prefix string) {
	ctx = context.WithoutCancel(ctx)
	for {
		keys, err := s.blobs.List(ctx, prefix, 1000)
		if err != nil {
			s.log.WarnContext(ctx, "listing objects to delete failed", slog.String("prefix", prefix), slog.Any("error", err))
			return
		}
		if s.deleteObjects(ctx, keys) || len(keys) < 1000 {
			return
		}
	}
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// ensureFound turns "no rows" from a store into the app NotFound.
func ensureFound(err error) error {
	if err != nil && fault.Is(err, fault.KindNotFound) {
		return errNotFound()
	}
	return err
}
