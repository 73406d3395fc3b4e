package origin

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
)

// Cookie names. The __Host- prefix makes the browser refuse the cookie unless it is Secure,
// has Path=/ and no Domain: it can only ever belong to the one origin that set it.
const (
	ViewCookie  = "__Host-forge_view"
	ShareCookie = "__Host-forge_share"
)

// GrantKind says what a grant was exchanged for.
type GrantKind byte

// The grant kinds.
const (
	// GrantView came from a view ticket: the viewer is an owner or collaborator.
	GrantView GrantKind = 1
	// GrantShare came from a share token, which it carries so that the sandbox origin can ask
	// apps again whether the link still works (after a revocation, it does not).
	GrantShare GrantKind = 2
)

// Grant is what an origin cookie holds: access to one app, until Expiry.
type Grant struct {
	Kind   GrantKind
	App    uuid.UUID
	Viewer owner.ID     // GrantView
	Token  secret.Value // GrantShare: the share token
	Expiry time.Time
}

// Sealer seals grants into cookie values with AES-256-GCM. A cookie value is opaque to the
// browser and to the app's own scripts (the cookie is HttpOnly anyway), cannot be forged or
// edited without the key, and is bound to its cookie name and app: a value copied to another
// app's origin does not open.
type Sealer struct {
	aead cipher.AEAD
	now  func() time.Time
}

// NewSealer returns a Sealer for a 32-byte key; now is the clock (nil: time.Now).
func NewSealer(key secret.Value, now func() time.Time) (*Sealer, error) {
	if key.Len() != 32 {
		return nil, errors.New("grant key: want 32 bytes")
	}
	block, err := aes.NewCipher([]byte(key.Reveal()))
	if err != nil {
		return nil, fmt.Errorf("grant key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("grant key: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Sealer{aead: aead, now: now}, nil
}

const grantVersion = 1

// maxTokenLen bounds the share token a grant carries (apps accepts at most 128 bytes).
const maxTokenLen = 128

// ErrBadGrant is returned for a cookie that does not open, is for another app, or expired.
var ErrBadGrant = errors.New("invalid origin grant")

func (k GrantKind) cookie() string {
	if k == GrantShare {
		return ShareCookie
	}
	return ViewCookie
}

// associated binds a sealed grant to its cookie name and app.
func associated(k GrantKind, app uuid.UUID) []byte {
	return append([]byte("forge-grant|"+k.cookie()+"|"), app[:]...)
}

// Seal returns the cookie name and value for g.
func (s *Sealer) Seal(g Grant) (name, value string, err error) {
	if g.Kind != GrantView && g.Kind != GrantShare {
		return "", "", errors.New("seal grant: unknown kind")
	}
	tok := g.Token.Reveal()
	if len(tok) > maxTokenLen {
		return "", "", errors.New("seal grant: token too long")
	}
	plain := make([]byte, 0, 2+16+8+2+len(tok))
	plain = append(plain, grantVersion, byte(g.Kind))
	v := g.Viewer.UUID()
	plain = append(plain, v[:]...)
	plain = binary.BigEndian.AppendUint64(plain, uint64(g.Expiry.Unix()))
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(tok)))
	plain = append(plain, tok...)
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", "", fmt.Errorf("seal grant: %w", err)
	}
	sealed := s.aead.Seal(nonce, nonce, plain, associated(g.Kind, g.App))
	return g.Kind.cookie(), base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Open checks a cookie value of kind k presented at app's origin and returns its grant.
func (s *Sealer) Open(k GrantKind, app uuid.UUID, value string) (Grant, error) {
	if len(value) > 1024 {
		return Grant{}, ErrBadGrant
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return Grant{}, ErrBadGrant
	}
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], associated(k, app))
	if err != nil || len(plain) < 2+16+8+2 || plain[0] != grantVersion || GrantKind(plain[1]) != k {
		return Grant{}, ErrBadGrant
	}
	g := Grant{Kind: k, App: app}
	viewer, err := uuid.FromBytes(plain[2:18])
	if err != nil {
		return Grant{}, ErrBadGrant
	}
	if k == GrantView {
		if g.Viewer, err = owner.Parse(viewer.String()); err != nil {
			return Grant{}, ErrBadGrant
		}
	}
	g.Expiry = time.Unix(int64(binary.BigEndian.Uint64(plain[18:26])), 0)
	n := int(binary.BigEndian.Uint16(plain[26:28]))
	if len(plain) != 28+n || (k == GrantShare) != (n > 0) {
		return Grant{}, ErrBadGrant
	}
	if n > 0 {
		g.Token = secret.New(string(plain[28:]))
	}
	if !s.now().Before(g.Expiry) {
		return Grant{}, ErrBadGrant
	}
	return g, nil
}
