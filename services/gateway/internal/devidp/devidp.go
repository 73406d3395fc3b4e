// Package devidp is the development identity provider: a tiny OpenID provider, served by the
// gateway under /dev/idp/ in development mode only, that signs an ID token for any email a
// newcomer asks for, so the local stack can be signed into with curl.
//
// It holds its own signing key (generated at start, in memory only) and publishes a discovery
// document and a JWKS like any provider. The gateway verifies its tokens exactly as it
// verifies a production issuer's: discovery and key fetch over HTTPS, signature, issuer,
// audience and expiry. Nothing in the verification path knows this provider exists.
package devidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// PathPrefix is where the provider is mounted on the edge.
const PathPrefix = "/dev/idp"

// TokenLifetime is how long an issued ID token is valid.
const TokenLifetime = time.Hour

// Provider is the development identity provider.
type Provider struct {
	issuer   string
	audience string
	signer   jose.Signer
	jwks     []byte
	now      func() time.Time
}

// New returns a provider whose issuer is issuer (https://localhost:<port>/dev/idp) and whose
// tokens are issued to audience. The signing key is generated here and never leaves memory.
func New(issuer, audience string, now func() time.Time) (*Provider, error) {
	if now == nil {
		now = time.Now
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devidp: key: %w", err)
	}
	kidBytes := make([]byte, 8)
	if _, err := rand.Read(kidBytes); err != nil {
		return nil, fmt.Errorf("devidp: key id: %w", err)
	}
	kid := "dev-" + hex.EncodeToString(kidBytes)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("devidp: signer: %w", err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig",
	}}})
	if err != nil {
		return nil, fmt.Errorf("devidp: jwks: %w", err)
	}
	return &Provider{issuer: strings.TrimSuffix(issuer, "/"), audience: audience, signer: signer, jwks: jwks, now: now}, nil
}

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.issuer }

// Handler serves the provider under PathPrefix.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathPrefix+"/.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET "+PathPrefix+"/jwks", p.keys)
	mux.HandleFunc("POST "+PathPrefix+"/token", p.token)
	mux.HandleFunc(PathPrefix+"/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 5, "message": "not found", "details": []any{}})
	})
	return mux
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.issuer,
		"jwks_uri":                              p.issuer + "/jwks",
		"token_endpoint":                        p.issuer + "/token",
		"authorization_endpoint":                p.issuer + "/authorize",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.ES256)},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "email", "email_verified"},
	})
}

func (p *Provider) keys(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(p.jwks)
}

// tokenRequest is the body of POST /dev/idp/token.
type tokenRequest struct {
	Email string `json:"email"`
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 3, "message": `body must be {"email": "<address>"}`, "details": []any{}})
		return
	}
	tok, err := p.Token(req.Email)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 3, "message": err.Error(), "details": []any{}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id_token":   tok,
		"token_type": "Bearer",
		"expires_in": int(TokenLifetime.Seconds()),
	})
}

// Token signs an ID token for email. The subject is derived from the address, so the same
// email signs into the same tenant across restarts of the local stack (the tenant service
// finds tenants by issuer and subject, never by email).
func (p *Provider) Token(email string) (string, error) {
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		return "", errors.New("email must be a plain address like alice@example.com")
	}
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	now := p.now()
	claims := struct {
		jwt.Claims
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}{
		Claims: jwt.Claims{
			Issuer:   p.issuer,
			Subject:  "dev-" + hex.EncodeToString(sum[:16]),
			Audience: jwt.Audience{p.audience},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(TokenLifetime)),
		},
		Email:         email,
		EmailVerified: true,
	}
	return jwt.Signed(p.signer).Claims(claims).Serialize()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
