package apps

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// resolve finds what the caller is to an app. The builder acts for the owner it asserts, so
// it resolves as the owner (and only the owner's own apps). Strangers get the NotFound of a
// missing app.
func (s *Service) resolve(ctx context.Context, c Caller, appID uuid.UUID) (Access, error) {
	if c.Owner.IsZero() {
		return Access{}, errNotFound()
	}
	o, role, disabled, err := s.store.Resolve(ctx, c.Owner, appID)
	if disabled {
		return Access{}, errDisabled()
	}
	if err != nil {
		return Access{}, err
	}
	if c.IsBuilder() && role != RoleOwner {
		return Access{}, errNotFound()
	}
	return Access{AppID: appID, Owner: o, Role: role, Caller: c}, nil
}

// errDisabled answers every request of a tenant whose deletion is pending, as the edge does.
func errDisabled() error { return fault.FailedPrecondition("the account is pending deletion") }

// refuseDisabled refuses a transaction's owner whose deletion is pending.
func refuseDisabled(ctx context.Context, tx StoreTx) error {
	disabled, err := tx.Disabled(ctx)
	if err != nil {
		return err
	}
	if disabled {
		return errDisabled()
	}
	return nil
}

// resolveOwner is resolve for owner-only methods: a collaborator learns the app exists (they
// can see it) but may not do this; everyone else gets NotFound.
func (s *Service) resolveOwner(ctx context.Context, c Caller, appID uuid.UUID) (Access, error) {
	a, err := s.resolve(ctx, c, appID)
	if err != nil {
		return Access{}, err
	}
	if a.Role != RoleOwner {
		return Access{}, fault.PermissionDenied("only the app's owner may do this")
	}
	return a, nil
}

// resolveWriter is resolve for methods that add versions and prompts (owner, editor, builder).
func (s *Service) resolveWriter(ctx context.Context, c Caller, appID uuid.UUID) (Access, error) {
	a, err := s.resolve(ctx, c, appID)
	if err != nil {
		return Access{}, err
	}
	if !a.Role.CanWrite() {
		return Access{}, fault.PermissionDenied("viewers may not change the app")
	}
	return a, nil
}

// Bindings: every ciphertext names its object and field, so it opens nowhere else.

func appBinding(id uuid.UUID, field string) Binding {
	return Binding{Object: "app/" + id.String(), Field: field}
}

func promptBinding(id uuid.UUID) Binding {
	return Binding{Object: "prompt/" + id.String(), Field: "text"}
}

func referenceBinding(id uuid.UUID, field string) Binding {
	return Binding{Object: "reference/" + id.String(), Field: field}
}

func collaboratorBinding(id uuid.UUID) Binding {
	return Binding{Object: "collaborator/" + id.String(), Field: "email"}
}

// versionBinding binds a version file's content to its app, version and path. The path is
// hashed so the binding stays within the vault's 256-byte object limit for any valid path.
func versionBinding(appID uuid.UUID, version int32, path string) Binding {
	return Binding{Object: fmt.Sprintf("version/%s/%d/%s", appID, version, pathHash(path)), Field: "content"}
}

func pathHash(path string) string {
	h := sha256.Sum256([]byte(path))
	return hex.EncodeToString(h[:])
}

// Object keys start with the owner ID, so a purge lists and deletes everything of one owner.

func appPrefix(o owner.ID, appID uuid.UUID) string {
	return o.String() + "/apps/" + appID.String() + "/"
}

func referenceKey(o owner.ID, appID, refID uuid.UUID) string {
	return appPrefix(o, appID) + "references/" + refID.String()
}

func versionFileKey(o owner.ID, appID uuid.UUID, version int32, path string) string {
	return fmt.Sprintf("%sversions/%d/%s", appPrefix(o, appID), version, pathHash(path))
}

func listingFileKey(o owner.ID, listingID uuid.UUID, version int32, path string) string {
	return fmt.Sprintf("%s/listings/%s/%d/%s", o, listingID, version, pathHash(path))
}

// Page tokens are opaque to clients: a kind byte (so a token of one listing is refused by
// another) and the keyset position.
type tokenKind byte

const (
	tokenApps tokenKind = iota + 1
	tokenShared
	tokenPrompts
	tokenReads
	tokenListings
)

var errBadToken = fault.InvalidField("page_token", "not a page token of this listing")

func encodeToken(k tokenKind, c Cursor) string {
	b := make([]byte, 0, 1+8+16+8)
	b = append(b, byte(k))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMicro()))
	b = append(b, c.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Seq))
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(k tokenKind, s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 1+8+16+8 || tokenKind(b[0]) != k {
		return nil, errBadToken
	}
	c := &Cursor{Time: time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:9]))).UTC()}
	copy(c.ID[:], b[9:25])
	c.Seq = int64(binary.BigEndian.Uint64(b[25:]))
	if c.Seq < 0 {
		return nil, errBadToken
	}
	return c, nil
}

// pageSize applies the default and the bound.
func pageSize(n int32) int {
	if n <= 0 {
		return 50
	}
	return int(min(n, 100))
}
