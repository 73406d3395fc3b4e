// Package owner is the typed tenant identity that every other package passes around: the
// immutable owner_id that sits on every row, the tenant's home region, and the context and
// metadata plumbing that carries them from the edge to the row.
//
// The owner is a type, not a string, so that a raw client-supplied string can never be used
// where a verified owner is expected: the only ways to obtain an ID are New (a fresh random
// one, for a new tenant) and Parse (for values read from verified sources).
package owner

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// ID is a tenant's owner_id: a random UUID, never derived from an email or an identity
// provider's subject. The zero value is "no owner".
type ID struct {
	u uuid.UUID
}

// New returns a new random owner ID (UUID v4 from crypto/rand).
func New() ID {
	return ID{u: uuid.New()}
}

// Parse reads an owner ID from its canonical string form.
func Parse(s string) (ID, error) {
	if len(s) != 36 {
		return ID{}, fmt.Errorf("owner id %q: not a canonical UUID", s)
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("owner id: %w", err)
	}
	if u == uuid.Nil {
		return ID{}, errors.New("owner id: nil UUID")
	}
	return ID{u: u}, nil
}

// MustParse is Parse for constants in tests; it panics on a malformed value.
func MustParse(s string) ID {
	id, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return id
}

// String returns the canonical lower-case UUID form ("" for the zero ID).
func (id ID) String() string {
	if id.IsZero() {
		return ""
	}
	return id.u.String()
}

// IsZero reports whether id is the zero ("no owner") value.
func (id ID) IsZero() bool { return id.u == uuid.Nil }

// UUID returns the underlying UUID.
func (id ID) UUID() uuid.UUID { return id.u }

// Value implements driver.Valuer so an ID can be a query argument. The zero ID is NULL,
// which matches no row and violates every NOT NULL owner_id column.
func (id ID) Value() (driver.Value, error) {
	if id.IsZero() {
		return nil, nil
	}
	return id.u.String(), nil
}

// Scan implements sql.Scanner so an owner_id column can be read into an ID.
func (id *ID) Scan(src any) error {
	if src == nil {
		*id = ID{}
		return nil
	}
	var u uuid.UUID
	if err := u.Scan(src); err != nil {
		return fmt.Errorf("owner id: %w", err)
	}
	*id = ID{u: u}
	return nil
}

// MarshalText implements encoding.TextMarshaler (JSON, slog).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	parsed, err := Parse(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// Owner is the verified tenant a request acts for: its ID and its home region.
type Owner struct {
	ID         ID
	HomeRegion Region
}

// Validate reports whether o names a tenant and a known region.
func (o Owner) Validate() error {
	if o.ID.IsZero() {
		return errors.New("owner: missing id")
	}
	if !o.HomeRegion.Valid() {
		return fmt.Errorf("owner: unknown home region %q", string(o.HomeRegion))
	}
	return nil
}

type ctxKey struct{}

// NewContext returns a context carrying the verified owner. Only the owner interceptor (after
// checking the peer may assert an owner) and code acting for a tenant named by a system
// method or an event should call it.
func NewContext(ctx context.Context, o Owner) context.Context {
	return context.WithValue(ctx, ctxKey{}, o)
}

// FromContext returns the verified owner of the request, if any.
func FromContext(ctx context.Context) (Owner, bool) {
	o, ok := ctx.Value(ctxKey{}).(Owner)
	if !ok || o.ID.IsZero() {
		return Owner{}, false
	}
	return o, true
}

type sessionKey struct{}

// WithSessionID returns a context carrying the ID of the session the edge authenticated the
// request with (asserted together with the owner; the tenant service uses it to mark and
// revoke the current session).
func WithSessionID(ctx context.Context, sessionID string) context.Context {
	return context.WithValue(ctx, sessionKey{}, sessionID)
}

// SessionIDFromContext returns the session ID asserted with the owner, if any.
func SessionIDFromContext(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(sessionKey{}).(string)
	return s, ok && s != ""
}

type requestKey struct{}

// WithRequestID returns a context carrying the edge's request ID (for log correlation only).
func WithRequestID(ctx context.Context, requestID string) context.Context {
	return context.WithValue(ctx, requestKey{}, requestID)
}

// RequestIDFromContext returns the request ID, if any.
func RequestIDFromContext(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(requestKey{}).(string)
	return s, ok && s != ""
}
