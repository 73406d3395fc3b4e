// Package testidp is an OpenID provider for the gateway's tests: a real HTTPS server (its
// own throwaway certificate) publishing a discovery document and a JWKS, and a signer that
// mints ID tokens with any claims, header or key a test needs, so the refusals of expired,
// tampered, wrong-issuer, wrong-audience and unsigned tokens are tested against the same
// verification path production uses.
package testidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"
)

// IdP is a running test identity provider.
type IdP struct {
	// Issuer is the provider's issuer URL (its HTTPS URL).
	Issuer string
	// Audience is the client ID tokens are issued to by default.
	Audience string
	// Roots trusts the provider's HTTPS certificate; CertPEM is that certificate (for
	// FORGE_OIDC_CA when the gateway runs as a separate process).
	Roots   *x509.CertPool
	CertPEM []byte

	key    *ecdsa.PrivateKey
	kid    string
	server *httptest.Server
}

// Start runs a provider until the test ends.
func Start(tb testing.TB, audience string) *IdP {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	p := &IdP{Audience: audience, key: key, kid: "test-key"}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: p.kid, Algorithm: string(jose.ES256), Use: "sig"}}})
	require.NoError(tb, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                p.Issuer,
			"jwks_uri":                              p.Issuer + "/jwks",
			"authorization_endpoint":                p.Issuer + "/authorize",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{string(jose.ES256)},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	p.server = httptest.NewTLSServer(mux)
	tb.Cleanup(p.server.Close)
	p.Issuer = p.server.URL
	p.Roots = x509.NewCertPool()
	p.Roots.AddCert(p.server.Certificate())
	p.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.server.Certificate().Raw})
	return p
}

// Claims are the claims of a token; zero fields get defaults from Token.
type Claims struct {
	Issuer        string
	Subject       string
	Audience      []string
	Email         string
	EmailVerified *bool
	Expiry        time.Time
	IssuedAt      time.Time
}

// Token signs claims with the provider's key. Defaults: the provider's issuer and audience,
// subject "sub-" + email, email verified, issued now, valid for an hour.
func (p *IdP) Token(tb testing.TB, c Claims) string {
	tb.Helper()
	return p.sign(tb, p.key, p.kid, c)
}

// TokenSignedBy signs claims with another key under the provider's key ID (a forgery).
func (p *IdP) TokenSignedBy(tb testing.TB, key *ecdsa.PrivateKey, c Claims) string {
	tb.Helper()
	return p.sign(tb, key, p.kid, c)
}

// UnsignedToken returns a token with "alg": "none" and an empty signature.
func (p *IdP) UnsignedToken(tb testing.TB, c Claims) string {
	tb.Helper()
	c = p.defaults(c)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	payload, err := json.Marshal(p.payload(c))
	require.NoError(tb, err)
	return header + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

// Tamper changes the payload of a signed token (the email), keeping its signature.
func Tamper(tb testing.TB, token, email string) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	require.Len(tb, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(tb, err)
	var claims map[string]any
	require.NoError(tb, json.Unmarshal(raw, &claims))
	claims["email"] = email
	claims["sub"] = "sub-" + email
	changed, err := json.Marshal(claims)
	require.NoError(tb, err)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(changed) + "." + parts[2]
}

func (p *IdP) defaults(c Claims) Claims {
	if c.Issuer == "" {
		c.Issuer = p.Issuer
	}
	if c.Audience == nil {
		c.Audience = []string{p.Audience}
	}
	if c.Email == "" {
		c.Email = "alice@example.com"
	}
	if c.Subject == "" {
		c.Subject = "sub-" + c.Email
	}
	if c.EmailVerified == nil {
		t := true
		c.EmailVerified = &t
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.Expiry.IsZero() {
		c.Expiry = c.IssuedAt.Add(time.Hour)
	}
	return c
}

func (p *IdP) payload(c Claims) map[string]any {
	return map[string]any{
		"iss":            c.Issuer,
		"sub":            c.Subject,
		"aud":            c.Audience,
		"email":          c.Email,
		"email_verified": *c.EmailVerified,
		"iat":            c.IssuedAt.Unix(),
		"exp":            c.Expiry.Unix(),
	}
}

func (p *IdP) sign(tb testing.TB, key *ecdsa.PrivateKey, kid string, c Claims) string {
	tb.Helper()
	c = p.defaults(c)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(tb, err)
	tok, err := jwt.Signed(signer).Claims(p.payload(c)).Serialize()
	require.NoError(tb, err)
	return tok
}

// NewKey returns a fresh signing key (for forgeries).
func NewKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	return key
}
