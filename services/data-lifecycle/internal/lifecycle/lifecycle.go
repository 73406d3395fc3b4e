// Package lifecycle holds data-lifecycle's nouns and rules: export jobs and their states,
// deletions and their schedule (30 days, cancellable before), the registry of every store that
// can hold tenant data (the single list a purge waits for), the signed deletion certificate,
// and the clock every rule reads, injected so tests can move time. It imports no transport or
// storage package: internal/postgres stores these values, internal/workflow drives them.
package lifecycle

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/forgeapps/backbone/pkg/secret"
)

// The durations the promises are made of.
const (
	// PurgeDelay is how long after the request the hard delete is due.
	PurgeDelay = 30 * 24 * time.Hour
	// ExportRetention is how long a ready archive is kept before it is deleted.
	ExportRetention = 7 * 24 * time.Hour
	// DownloadLinkTTL is how long a download link can be used (once).
	DownloadLinkTTL = 5 * time.Minute
	// DefaultBackupRetention is how long a database backup is kept.
	DefaultBackupRetention = 30 * 24 * time.Hour
)

// ConfirmPhrase is what the owner must type to request the deletion of the account.
const ConfirmPhrase = "DELETE MY ACCOUNT"

// Clock is the only source of "now" for every rule of the service. Production uses
// SystemClock; tests use a ManualClock and move it.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// ManualClock is a clock tests set and move; it is safe for concurrent use.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock reading t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t.UTC()} }

// Now implements Clock.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (backwards too).
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t.UTC()
}

// Advance moves the clock by d (negative moves it back).
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// ExportState is where an export job is.
type ExportState string

// The export states. Pending and running are "active": one at a time per tenant (a unique
// partial index enforces it, not only the code).
const (
	ExportPending   ExportState = "pending"
	ExportRunning   ExportState = "running"
	ExportReady     ExportState = "ready"
	ExportFailed    ExportState = "failed"
	ExportCancelled ExportState = "cancelled"
	ExportExpired   ExportState = "expired"
)

// Active reports whether the export still has work to do.
func (s ExportState) Active() bool { return s == ExportPending || s == ExportRunning }

// DeletionState is where an account deletion is.
type DeletionState string

// The deletion states.
const (
	DeletionPending   DeletionState = "pending"
	DeletionCancelled DeletionState = "cancelled"
	DeletionPurging   DeletionState = "purging"
	DeletionCompleted DeletionState = "completed"
)

// Due reports whether a purge due at due may start at now. A clock moved backwards makes
// nothing due early: the due time is fixed at the request and only compared, never recomputed.
func Due(due, now time.Time) bool { return !now.Before(due) }

// Token prefixes: a receipt outlives the account; a download link is single-use.
const (
	ReceiptPrefix  = "fgr_"
	DownloadPrefix = "fgd_"
)

// ErrMalformedToken is returned for a token that cannot be one of ours.
var ErrMalformedToken = errors.New("malformed token")

// NewToken returns a fresh bearer token (prefix + 43 base64url characters of 32 random
// bytes) and the SHA-256 hash that is stored in its place.
func NewToken(prefix string) (secret.Value, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return secret.Value{}, nil, err
	}
	tok := prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret.New(tok), HashToken(tok), nil
}

// ParseToken checks the shape of a token with the given prefix and returns its hash.
func ParseToken(prefix, tok string) ([]byte, error) {
	rest, ok := strings.CutPrefix(tok, prefix)
	if !ok || len(rest) != 43 {
		return nil, ErrMalformedToken
	}
	if b, err := base64.RawURLEncoding.DecodeString(rest); err != nil || len(b) != 32 {
		return nil, ErrMalformedToken
	}
	return HashToken(tok), nil
}

// HashToken is the stored form of a token.
func HashToken(tok string) []byte {
	sum := sha256.Sum256([]byte(tok))
	return sum[:]
}

// EqualHash compares two token hashes in constant time.
func EqualHash(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
