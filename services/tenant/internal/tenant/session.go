package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
)

// Session is one signed-in client of an owner. Its token is never kept: only TokenHash.
type Session struct {
	ID         uuid.UUID
	CreateTime time.Time
	ExpireTime time.Time
	UserAgent  string
}

// TokenPrefix starts every session token, so a leaked one is recognisable (secret scanners,
// logs) and a token of another kind is refused without a database round trip.
const TokenPrefix = "fgs_"

// tokenBytes is the entropy of a token: 256 bits from crypto/rand.
const tokenBytes = 32

// TokenLen is the length of a token string: the prefix and 43 base64url characters.
var TokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(tokenBytes)

// TokenHash is the SHA-256 of a token string: what the sessions table stores. A token with
// 256 bits of entropy needs no salt or slow hash: nobody can enumerate the preimages.
type TokenHash [sha256.Size]byte

// NewSessionToken returns a fresh token and its hash.
func NewSessionToken() (secret.Value, TokenHash, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return secret.Value{}, TokenHash{}, fmt.Errorf("session token: %w", err)
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret.New(tok), sha256.Sum256([]byte(tok)), nil
}

// ParseSessionToken checks a token's shape and returns its hash. Anything that this service
// could not have issued is refused with ErrInvalidSession, the same answer as for an unknown,
// expired or revoked token.
func ParseSessionToken(tok secret.Value) (TokenHash, error) {
	s := tok.Reveal()
	if len(s) != TokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return TokenHash{}, ErrInvalidSession
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(TokenPrefix):])
	if err != nil || len(b) != tokenBytes {
		return TokenHash{}, ErrInvalidSession
	}
	return sha256.Sum256([]byte(s)), nil
}

// SessionLimits bound session lifetimes configurable by the operator.
const (
	MinSessionTTL     = 5 * time.Minute
	MaxSessionTTL     = 90 * 24 * time.Hour
	DefaultSessionTTL = 7 * 24 * time.Hour
)

// MaxUserAgent bounds the stored user agent (characters).
const MaxUserAgent = 512

// CleanUserAgent keeps a user agent printable and bounded: it is shown back to the owner.
func CleanUserAgent(ua string) string {
	ua = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(ua, ""))
	if r := []rune(ua); len(r) > MaxUserAgent {
		ua = string(r[:MaxUserAgent])
	}
	return ua
}

// AuthenticatedSession is what a live token (or a verified identity, with no session)
// resolves to.
type AuthenticatedSession struct {
	SessionID  uuid.UUID
	OwnerID    owner.ID
	HomeRegion owner.Region
	Status     Status
	ExpireTime time.Time
}
