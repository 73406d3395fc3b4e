package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Identity is what a verified ID token says about a person.
type Identity struct {
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	Expiry        time.Time
}

// Verification errors.
var (
	// ErrInvalidToken: the token is not a valid ID token of our issuer for our audience
	// (bad signature, unknown key, wrong issuer or audience, alg none, malformed).
	ErrInvalidToken = errors.New("invalid ID token")
	// ErrTokenExpired: a valid token whose time has passed.
	ErrTokenExpired = errors.New("ID token expired")
	// ErrIssuerUnavailable: the issuer's discovery document or keys cannot be fetched.
	ErrIssuerUnavailable = errors.New("identity provider unavailable")
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer is the issuer URL; its discovery document names the JWKS.
	Issuer string
	// Audience is the client ID the tokens must be issued to.
	Audience string
	// Client fetches discovery and keys; nil uses HTTPClient(nil).
	Client *http.Client
	// Now is the clock for expiry checks; nil is time.Now.
	Now func() time.Time
}

// Verifier checks ID tokens the way production does, in every mode: discovery of the
// issuer's configuration, its JWKS fetched over HTTPS (and re-fetched on an unknown key ID),
// signature with one of the algorithms the issuer announces (never "none"), issuer, audience
// and expiry.
//
// Discovery happens on first use, not at construction: the development identity provider is
// served by this very process, which is not listening yet when the verifier is built, and a
// production issuer briefly unreachable at start should not keep the edge down.
type Verifier struct {
	cfg VerifierConfig

	mu          sync.Mutex
	verifier    *oidc.IDTokenVerifier
	lastAttempt time.Time
	lastErr     error
}

// retryDiscovery bounds how often a failed discovery is retried, so an unreachable issuer is
// not asked once per request.
const retryDiscovery = time.Second

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: issuer and audience are required")
	}
	if cfg.Client == nil {
		cfg.Client = HTTPClient(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg}, nil
}

// HTTPClient returns the client for the issuer's HTTPS: system roots plus roots (which may
// be nil), TLS 1.2 or later, and a timeout.
func HTTPClient(roots *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// RootsWithFile returns the system roots plus the certificates of a PEM file.
func RootsWithFile(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("auth: issuer CA bundle: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("auth: issuer CA bundle %s: no certificate", file)
	}
	return pool, nil
}

// Issuer is the configured issuer URL.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// Discover fetches the issuer's configuration now if it has not been fetched yet; the edge
// calls it once it listens, so a misconfiguration shows in the log at start.
func (v *Verifier) Discover(ctx context.Context) error {
	_, err := v.get(ctx)
	return err
}

func (v *Verifier) get(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	now := v.cfg.Now()
	if v.lastErr != nil && now.Sub(v.lastAttempt) < retryDiscovery {
		return nil, v.lastErr
	}
	v.lastAttempt = now
	cctx := oidc.ClientContext(ctx, v.cfg.Client)
	provider, err := oidc.NewProvider(cctx, v.cfg.Issuer)
	if err != nil {
		v.lastErr = fmt.Errorf("%w: discovery of %s: %w", ErrIssuerUnavailable, v.cfg.Issuer, err)
		return nil, v.lastErr
	}
	// The key set fetches with the issuer's client, but never with the request's deadline:
	// a request cancelled mid-fetch must not poison the shared key set.
	v.verifier = provider.VerifierContext(oidc.ClientContext(context.WithoutCancel(ctx), v.cfg.Client),
		&oidc.Config{ClientID: v.cfg.Audience, Now: v.cfg.Now})
	v.lastErr = nil
	return v.verifier, nil
}

// Verify checks raw and returns the identity it carries.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	verifier, err := v.get(ctx)
	if err != nil {
		return Identity{}, err
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return Identity{}, ErrTokenExpired
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return Identity{}, err
		}
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	var claims struct {
		Email         string          `json:"email"`
		EmailVerified json.RawMessage `json:"email_verified"`
	}
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %w", ErrInvalidToken, err)
	}
	if tok.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	return Identity{
		Issuer:  tok.Issuer,
		Subject: tok.Subject,
		Email:   claims.Email,
		// Some providers send "true" as a string; anything else is not verified.
		EmailVerified: string(claims.EmailVerified) == "true" || string(claims.EmailVerified) == `"true"`,
		Expiry:        tok.Expiry,
	}, nil
}
