package apps

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/secret"
)

// Share link tokens: "fsl_" + base64url of 32 random bytes (256 bits); only the SHA-256 of
// the whole token is stored.
const (
	shareTokenPrefix = "fsl_"
	shareTokenBytes  = 32
	// DefaultShareTTL and MaxShareTTL bound a link's life.
	DefaultShareTTL = 7 * 24 * time.Hour
	MaxShareTTL     = 90 * 24 * time.Hour
)

// ShareLink is a link's metadata (never its token).
type ShareLink struct {
	ID      uuid.UUID
	Created time.Time
	Expires time.Time
}

// NewShareToken returns a fresh token and its hash.
func NewShareToken() (secret.Value, []byte, error) {
	var b [shareTokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return secret.Value{}, nil, fmt.Errorf("share token: %w", err)
	}
	tok := shareTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret.New(tok), HashShareToken(tok), nil
}

// HashShareToken is what the database stores and looks a token up by.
func HashShareToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// wellFormedShareToken reports whether tok can be a share token at all (so a malformed one
// never reaches the database).
func wellFormedShareToken(tok string) bool {
	rest, ok := strings.CutPrefix(tok, shareTokenPrefix)
	if !ok {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil && len(b) == shareTokenBytes
}

// CreateShareLink makes a link that opens the built app (owner only). A private app becomes
// link-shared.
func (s *Service) CreateShareLink(ctx context.Context, c Caller, appID uuid.UUID, ttl time.Duration) (ShareLink, secret.Value, string, error) {
	if ttl == 0 {
		ttl = DefaultShareTTL
	}
	if ttl < 0 || ttl > MaxShareTTL {
		return ShareLink{}, secret.Value{}, "", fault.InvalidField("ttl_seconds", "at most 90 days")
	}
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return ShareLink{}, secret.Value{}, "", err
	}
	tok, hash, err := NewShareToken()
	if err != nil {
		return ShareLink{}, secret.Value{}, "", err
	}
	now := s.clock()
	l := ShareLinkRecord{ID: uuid.New(), AppID: appID, TokenHash: hash, Created: now, Expires: now.Add(ttl)}
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if err := refuseDisabled(ctx, tx); err != nil {
			return err
		}
		rec, err := tx.App(ctx, appID, true)
		if err != nil {
			return err
		}
		if rec.Visibility == VisibilityPrivate {
			rec.Visibility, rec.Updated = VisibilityLink, now
			if err := tx.UpdateApp(ctx, rec); err != nil {
				return err
			}
		}
		return tx.InsertShareLink(ctx, l)
	})
	if err != nil {
		return ShareLink{}, secret.Value{}, "", ensureFound(err)
	}
	url := ""
	if base := s.AppURL(appID); base != "" {
		url = base + "?forge_share=" + tok.Reveal()
	}
	return ShareLink{ID: l.ID, Created: l.Created, Expires: l.Expires}, tok, url, nil
}

// ListShareLinks lists an app's live links (owner only).
func (s *Service) ListShareLinks(ctx context.Context, c Caller, appID uuid.UUID) ([]ShareLink, error) {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return nil, err
	}
	var recs []ShareLinkRecord
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		recs, err = tx.ShareLinks(ctx, appID, s.clock())
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]ShareLink, len(recs))
	for i, r := range recs {
		out[i] = ShareLink{ID: r.ID, Created: r.Created, Expires: r.Expires}
	}
	return out, nil
}

// RevokeShareLink ends a link at once (owner only).
func (s *Service) RevokeShareLink(ctx context.Context, c Caller, appID, linkID uuid.UUID) error {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return err
	}
	return s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if err := tx.RevokeShareLink(ctx, appID, linkID, s.clock()); err != nil {
			return err
		}
		return tx.AccessChanged(ctx, appID, AccessLinkRevoked)
	})
}

// Collaborator is an invited tenant as the owner sees it.
type Collaborator struct {
	ID      uuid.UUID
	Email   string
	Role    Role
	Created time.Time
}

// AddCollaborator invites the active tenant that signed in with email (studio plan only).
func (s *Service) AddCollaborator(ctx context.Context, c Caller, appID uuid.UUID, email string, role Role) (Collaborator, error) {
	if role != RoleEditor && role != RoleViewer {
		return Collaborator{}, fault.InvalidField("role", "ROLE_EDITOR or ROLE_VIEWER")
	}
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return Collaborator{}, err
	}
	plan, err := s.tenants.Plan(ctx, a.Owner)
	if err != nil {
		return Collaborator{}, fmt.Errorf("plan: %w", err)
	}
	if plan != PlanStudio {
		return Collaborator{}, fault.FailedPrecondition("inviting collaborators needs the studio plan").
			WithReason("PLAN_REQUIRED", map[string]string{"plan": "studio"})
	}
	member, err := s.tenants.ResolveEmail(ctx, email)
	if err != nil {
		return Collaborator{}, err
	}
	if member == a.Owner {
		return Collaborator{}, fault.InvalidField("email", "the owner cannot be a collaborator")
	}
	col := CollaboratorRecord{ID: uuid.New(), AppID: appID, Member: member, Role: role, Created: s.clock()}
	cts, ver, err := s.crypto.Encrypt(ctx, a.Owner, PurposeAppContent, []CryptoItem{{Binding: collaboratorBinding(col.ID), Data: []byte(email)}})
	if err != nil {
		return Collaborator{}, fmt.Errorf("seal collaborator: %w", err)
	}
	col.Email, col.KeyVersion = cts[0], ver
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if err := refuseDisabled(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.App(ctx, appID, true); err != nil {
			return err
		}
		return tx.InsertCollaborator(ctx, col)
	})
	if err != nil {
		return Collaborator{}, ensureFound(err)
	}
	return Collaborator{ID: col.ID, Email: email, Role: role, Created: col.Created}, nil
}

// ListCollaborators lists an app's collaborators (owner only).
func (s *Service) ListCollaborators(ctx context.Context, c Caller, appID uuid.UUID) ([]Collaborator, error) {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return nil, err
	}
	var recs []CollaboratorRecord
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		recs, err = tx.Collaborators(ctx, appID)
		return err
	})
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	items := make([]CryptoItem, len(recs))
	for i, r := range recs {
		items[i] = CryptoItem{Binding: collaboratorBinding(r.ID), Data: r.Email}
	}
	pts, err := s.crypto.Decrypt(ctx, a.Owner, PurposeAppContent, items)
	if err != nil {
		return nil, fmt.Errorf("open collaborators: %w", err)
	}
	out := make([]Collaborator, len(recs))
	for i, r := range recs {
		out[i] = Collaborator{ID: r.ID, Email: string(pts[i]), Role: r.Role, Created: r.Created}
	}
	return out, nil
}

// RemoveCollaborator ends a collaborator's access at once (owner only).
func (s *Service) RemoveCollaborator(ctx context.Context, c Caller, appID, colID uuid.UUID) error {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return err
	}
	return s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if err := tx.DeleteCollaborator(ctx, appID, colID); err != nil {
			return err
		}
		return tx.AccessChanged(ctx, appID, AccessCollaboratorRemoved)
	})
}
