package apps

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/services/apps/internal/keyscan"
)

// Listing is a Discover entry: public fields only.
type Listing struct {
	ID          uuid.UUID
	AppID       uuid.UUID
	Name        string
	Description string
	Published   time.Time
	Files       []File
	URL         string
}

// sanitize prepares a tenant-authored string for the public listing: control characters
// become spaces, runs of space collapse, and anything that looks like an API key is removed.
func (s *Service) sanitize(text string) string {
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, text)
	if found := s.scanner.Scan(text); len(found) > 0 {
		text = keyscan.Replace(text, found, func(int) string { return "[removed]" })
	}
	return strings.Join(strings.Fields(text), " ")
}

// PublishApp copies the app's current version, name and description into a public Discover
// listing (replacing an earlier one) and makes the app public (owner only). A version whose
// text files hold a known provider's key format is refused: publishing would hand the key to
// everyone.
func (s *Service) PublishApp(ctx context.Context, c Caller, appID uuid.UUID) (Listing, error) {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return Listing{}, err
	}
	var (
		out     Listing
		written []string
		oldKeys []string
	)
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if err := refuseDisabled(ctx, tx); err != nil {
			return err
		}
		rec, err := tx.App(ctx, appID, true)
		if err != nil {
			return err
		}
		if rec.CurrentVersion == 0 {
			return fault.FailedPrecondition("the app has no version to publish")
		}
		opened, err := s.openApps(ctx, a.Owner, []AppRecord{rec}, RoleOwner)
		if err != nil {
			return err
		}
		frecs, err := tx.VersionFiles(ctx, appID, rec.CurrentVersion)
		if err != nil {
			return err
		}
		files, err := s.openFiles(ctx, a, PurposeAppContent, rec.CurrentVersion, frecs)
		if err != nil {
			return err
		}
		for _, f := range files {
			if isText(f.Content) && knownKey(s, string(f.Content)) {
				return fault.FailedPrecondition("%s holds what looks like an API key; keep it in a secret of the app", f.Path)
			}
		}
		// Publishing again refreshes the same listing: its ID (and so its links) stays.
		listingID, ok, err := tx.ListingID(ctx, appID)
		if err != nil {
			return err
		}
		if !ok {
			listingID = uuid.New()
		}
		l := ListingRecord{ID: listingID, Owner: a.Owner, AppID: appID, Name: s.sanitize(opened[0].Name),
			Description: s.sanitize(opened[0].Description), Version: rec.CurrentVersion, Published: s.clock()}
		for _, f := range files {
			key := listingFileKey(a.Owner, l.ID, l.Version, f.Path)
			if err := s.blobs.Put(ctx, key, f.Content); err != nil {
				return fmt.Errorf("store listing file: %w", err)
			}
			written = append(written, key)
			l.Files = append(l.Files, ListingFile{Path: f.Path, ContentType: f.ContentType, Size: f.Size, ObjectKey: key})
		}
		if oldKeys, err = tx.UpsertListing(ctx, l); err != nil {
			return err
		}
		if rec.Visibility != VisibilityPublic {
			rec.Visibility, rec.Updated = VisibilityPublic, l.Published
			if err := tx.UpdateApp(ctx, rec); err != nil {
				return err
			}
			if err := tx.AccessChanged(ctx, appID, AccessVisibilityChanged); err != nil {
				return err
			}
		}
		out = s.listing(l)
		return nil
	})
	if err != nil {
		s.deleteObjects(ctx, written)
		return Listing{}, ensureFound(err)
	}
	// The same version published again wrote the same keys: keep those.
	kept := map[string]bool{}
	for _, k := range written {
		kept[k] = true
	}
	var stale []string
	for _, k := range oldKeys {
		if !kept[k] {
			stale = append(stale, k)
		}
	}
	s.deleteObjects(ctx, stale)
	return out, nil
}

func knownKey(s *Service, text string) bool {
	for _, f := range s.scanner.Scan(text) {
		if f.Provider.Known() {
			return true
		}
	}
	return false
}

func (s *Service) listing(l ListingRecord) Listing {
	out := Listing{ID: l.ID, AppID: l.AppID, Name: l.Name, Description: l.Description, Published: l.Published, URL: s.AppURL(l.AppID)}
	for _, f := range l.Files {
		out.Files = append(out.Files, File{Path: f.Path, ContentType: f.ContentType, Size: f.Size})
	}
	return out
}

// UnpublishApp removes the listing at once (owner only). The app goes back to link-shared
// while an unexpired link exists, else to private.
func (s *Service) UnpublishApp(ctx context.Context, c Caller, appID uuid.UUID) error {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return err
	}
	var keys []string
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		rec, err := tx.App(ctx, appID, true)
		if err != nil {
			return err
		}
		var existed bool
		if keys, existed, err = tx.DeleteListing(ctx, appID); err != nil {
			return err
		}
		if !existed && rec.Visibility != VisibilityPublic {
			return nil // nothing to undo: unpublishing twice is not an error
		}
		if rec.Visibility == VisibilityPublic {
			links, err := tx.HasLiveShareLink(ctx, appID, s.clock())
			if err != nil {
				return err
			}
			rec.Visibility = VisibilityPrivate
			if links {
				rec.Visibility = VisibilityLink
			}
			rec.Updated = s.clock()
			if err := tx.UpdateApp(ctx, rec); err != nil {
				return err
			}
		}
		return tx.AccessChanged(ctx, appID, AccessUnpublished)
	})
	if err != nil {
		return ensureFound(err)
	}
	s.deleteObjects(ctx, keys)
	return nil
}

// ListListings pages through Discover, newest first (anyone, even anonymous).
func (s *Service) ListListings(ctx context.Context, size int32, token string) ([]Listing, string, error) {
	after, err := decodeToken(tokenListings, token)
	if err != nil {
		return nil, "", err
	}
	limit := pageSize(size)
	recs, err := s.store.Listings(ctx, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(recs) > limit {
		recs = recs[:limit]
		last := recs[limit-1]
		next = encodeToken(tokenListings, Cursor{Time: last.Published, ID: last.ID})
	}
	out := make([]Listing, len(recs))
	for i, r := range recs {
		out[i] = s.listing(r)
	}
	return out, next, nil
}

// GetListing returns one listing (anyone).
func (s *Service) GetListing(ctx context.Context, id uuid.UUID) (Listing, error) {
	rec, err := s.store.Listing(ctx, id)
	if err != nil {
		return Listing{}, err
	}
	return s.listing(rec), nil
}

// GetListingFile returns one file of a listing with its content (anyone).
func (s *Service) GetListingFile(ctx context.Context, id uuid.UUID, path string) (File, error) {
	rec, err := s.store.Listing(ctx, id)
	if err != nil {
		return File{}, err
	}
	for _, f := range rec.Files {
		if f.Path == path {
			data, err := s.blobs.Get(ctx, f.ObjectKey)
			if err != nil {
				return File{}, fmt.Errorf("read listing file: %w", err)
			}
			return File{Path: f.Path, ContentType: f.ContentType, Content: data, Size: f.Size}, nil
		}
	}
	return File{}, fault.NotFound("file not found")
}

// RemixListing copies a listing's files into a new private app of the caller: its first
// version. Nothing else of the listing's owner is read (no prompts, references, secrets or
// collaborators: the listing holds none of them).
func (s *Service) RemixListing(ctx context.Context, c Caller, id uuid.UUID, name string) (App, error) {
	if c.Owner.IsZero() {
		return App{}, fault.Unauthenticated("no verified owner")
	}
	l, err := s.store.Listing(ctx, id)
	if err != nil {
		return App{}, err
	}
	if name == "" {
		name = l.Name
	}
	if name == "" {
		name = "Remix"
	}
	files := make([]File, len(l.Files))
	for i, f := range l.Files {
		data, err := s.blobs.Get(ctx, f.ObjectKey)
		if err != nil {
			return App{}, fmt.Errorf("read listing file: %w", err)
		}
		files[i] = File{Path: f.Path, ContentType: f.ContentType, Content: data}
	}
	app, err := s.CreateApp(ctx, c, AppInput{Name: name, Description: l.Description})
	if err != nil {
		return App{}, err
	}
	if len(files) == 0 {
		return app, nil
	}
	v, err := s.CreateVersion(ctx, c, app.ID, files)
	if err != nil {
		// The new app is the caller's own; leave no half-made remix behind.
		if derr := s.DeleteApp(context.WithoutCancel(ctx), c, app.ID); derr != nil {
			return App{}, fmt.Errorf("remix: %w (and removing the new app failed: %w)", err, derr)
		}
		return App{}, err
	}
	app.CurrentVersion = v.Version
	return app, nil
}
