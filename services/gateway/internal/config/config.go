// Package config reads the gateway's settings from the environment (the only place that
// does) and refuses, at start, a configuration that would weaken the edge: a missing issuer
// or audience outside development mode, a console origin that is not an origin, or the
// development identity provider switched on in what looks like a production region.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/forgeapps/backbone/pkg/service"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Name is the gateway's workload and service name.
const Name = workload.Gateway

// DevAudience is the client ID the development identity provider issues ID tokens for, and
// the audience the gateway expects in development mode unless FORGE_OIDC_AUDIENCE says
// otherwise.
const DevAudience = "forge-dev-console"

// Backend is one service whose JSON API the edge serves.
type Backend struct {
	// Workload is the service's workload name (the certificate it must present).
	Workload string
	// Addr is its gRPC address; empty means the service is not served by this edge.
	Addr string
}

// RateLimit is a token bucket: Rate requests per second on average, Burst at once.
type RateLimit struct {
	Rate  float64
	Burst int
}

// Config is the gateway's configuration.
type Config struct {
	Base service.Base

	// HTTPAddr is where the browser-facing HTTPS server listens.
	HTTPAddr string
	// EdgeCert and EdgeKey are the HTTPS serving certificate and key (re-read on rotation).
	EdgeCert, EdgeKey string
	// ConsoleOrigin is the only origin CORS allows, and the Origin a cookie-authenticated
	// request that changes state must carry.
	ConsoleOrigin string

	// OIDCIssuer and OIDCAudience are the identity provider whose ID tokens are accepted.
	// In development mode an empty issuer means the built-in development identity provider.
	OIDCIssuer   string
	OIDCAudience string
	// OIDCCAFile, when set, adds a PEM bundle to the system roots for the issuer's HTTPS
	// (discovery and keys). In development mode it defaults to FORGE_TLS_CA, which signed
	// the edge certificate the development identity provider is served with.
	OIDCCAFile string
	// DevIdP runs the development identity provider (development mode with no issuer set).
	DevIdP bool

	// Tenant is required (every credential is resolved by it); the others are optional.
	Tenant, Apps, Vault, Sandbox, Lifecycle Backend

	// IPLimit limits requests per client address, TenantLimit per authenticated tenant.
	IPLimit, TenantLimit RateLimit
	// MaxBodyBytes bounds request bodies; MaxUploadBytes those of the upload routes.
	MaxBodyBytes, MaxUploadBytes int64
	// AuthCacheTTL is how long an Authenticate answer may be reused (0 turns the cache off);
	// AuthCacheSize bounds the number of cached credentials.
	AuthCacheTTL  time.Duration
	AuthCacheSize int
}

// Backends lists the services in a stable order.
func (c Config) Backends() []Backend {
	return []Backend{c.Tenant, c.Apps, c.Vault, c.Sandbox, c.Lifecycle}
}

// Load reads the configuration through getenv.
func Load(getenv func(string) string) (Config, error) {
	base, err := service.LoadBase(Name, getenv)
	if err != nil {
		return Config{}, err
	}
	p := parser{getenv: getenv}
	c := Config{
		Base:          base,
		HTTPAddr:      p.required("FORGE_HTTP_ADDR"),
		EdgeCert:      p.required("FORGE_EDGE_CERT"),
		EdgeKey:       p.required("FORGE_EDGE_KEY"),
		ConsoleOrigin: p.str("FORGE_CONSOLE_ORIGIN"),
		OIDCIssuer:    p.str("FORGE_OIDC_ISSUER"),
		OIDCAudience:  p.str("FORGE_OIDC_AUDIENCE"),
		OIDCCAFile:    p.str("FORGE_OIDC_CA"),
		Tenant:        Backend{Workload: workload.Tenant, Addr: p.required("FORGE_TENANT_ADDR")},
		Apps:          Backend{Workload: workload.Apps, Addr: p.str("FORGE_APPS_ADDR")},
		Vault:         Backend{Workload: workload.SecretsVault, Addr: p.str("FORGE_VAULT_ADDR")},
		Sandbox:       Backend{Workload: workload.SandboxOrigin, Addr: p.str("FORGE_SANDBOX_ADDR")},
		Lifecycle:     Backend{Workload: workload.DataLifecycle, Addr: p.str("FORGE_LIFECYCLE_ADDR")},
		IPLimit: RateLimit{
			Rate:  p.float("FORGE_RATE_IP_RPS", 100),
			Burst: p.int("FORGE_RATE_IP_BURST", 200),
		},
		TenantLimit: RateLimit{
			Rate:  p.float("FORGE_RATE_TENANT_RPS", 30),
			Burst: p.int("FORGE_RATE_TENANT_BURST", 60),
		},
		MaxBodyBytes:   int64(p.int("FORGE_MAX_BODY_BYTES", 1<<20)),
		MaxUploadBytes: int64(p.int("FORGE_MAX_UPLOAD_BYTES", 16<<20)),
		AuthCacheTTL:   p.duration("FORGE_AUTH_CACHE_TTL", 5*time.Second),
		AuthCacheSize:  p.int("FORGE_AUTH_CACHE_SIZE", 10000),
	}
	if base.DevMode {
		if c.OIDCAudience == "" {
			c.OIDCAudience = DevAudience
		}
		if c.OIDCCAFile == "" {
			c.OIDCCAFile = base.TLS.CAFile
		}
		c.DevIdP = c.OIDCIssuer == ""
	}
	c.validate(&p)
	if len(p.problems) > 0 {
		return Config{}, fmt.Errorf("%s configuration: %s", Name, strings.Join(p.problems, "; "))
	}
	return c, nil
}

func (c *Config) validate(p *parser) {
	if c.ConsoleOrigin == "" {
		p.fail("FORGE_CONSOLE_ORIGIN is required")
	} else if err := checkOrigin(c.ConsoleOrigin); err != nil {
		p.fail("FORGE_CONSOLE_ORIGIN: " + err.Error())
	}
	if !c.Base.DevMode {
		if c.OIDCIssuer == "" {
			p.fail("FORGE_OIDC_ISSUER is required (outside development mode)")
		}
		if c.OIDCAudience == "" {
			p.fail("FORGE_OIDC_AUDIENCE is required (outside development mode)")
		}
	}
	if c.OIDCIssuer != "" {
		u, err := url.Parse(c.OIDCIssuer)
		switch {
		case err != nil || u.Host == "":
			p.fail("FORGE_OIDC_ISSUER: not a URL")
		case u.Scheme != "https":
			p.fail("FORGE_OIDC_ISSUER: the issuer must be an https URL")
		}
	}
	// Development mode runs an identity provider that signs a token for any email. Refuse it
	// wherever the rest of the configuration points at real users.
	if c.Base.DevMode {
		if c.OIDCIssuer != "" && !isLocalURL(c.OIDCIssuer) {
			p.fail("FORGE_DEV_MODE=1 with a non-local FORGE_OIDC_ISSUER looks like production: refusing to start")
		}
		if c.ConsoleOrigin != "" && !isLocalURL(c.ConsoleOrigin) {
			p.fail("FORGE_DEV_MODE=1 with a non-local FORGE_CONSOLE_ORIGIN looks like production: refusing to start")
		}
	}
	for _, l := range []struct {
		name string
		RateLimit
	}{{"FORGE_RATE_IP", c.IPLimit}, {"FORGE_RATE_TENANT", c.TenantLimit}} {
		if l.Rate <= 0 || l.Burst < 1 {
			p.fail(l.name + "_RPS and _BURST must be positive")
		}
	}
	if c.MaxBodyBytes < 1024 || c.MaxUploadBytes < c.MaxBodyBytes {
		p.fail("FORGE_MAX_BODY_BYTES must be at least 1024 and FORGE_MAX_UPLOAD_BYTES at least as large")
	}
	if c.AuthCacheTTL < 0 || c.AuthCacheTTL > time.Minute {
		p.fail("FORGE_AUTH_CACHE_TTL must be between 0 (off) and 1m: a revoked session must stop working quickly on every replica")
	}
	if c.AuthCacheSize < 1 {
		p.fail("FORGE_AUTH_CACHE_SIZE must be positive")
	}
	if c.Base.NATSURL == "" && c.AuthCacheTTL > 0 {
		// Without the revocation feed another replica's sign-out would go unnoticed for a TTL.
		p.fail("NATS_URL is required while FORGE_AUTH_CACHE_TTL is not 0 (revocations reach the cache through tenant.sessions.revoked)")
	}
}

// LogValue describes the configuration without anything secret (there is nothing secret in
// it, but the habit is kept: logging a Config is safe).
func (c Config) LogValue() slog.Value {
	var served []string
	for _, b := range c.Backends() {
		if b.Addr != "" {
			served = append(served, b.Workload)
		}
	}
	return slog.GroupValue(
		slog.Any("base", c.Base),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("console_origin", c.ConsoleOrigin),
		slog.String("oidc_issuer", c.OIDCIssuer),
		slog.String("oidc_audience", c.OIDCAudience),
		slog.Bool("dev_idp", c.DevIdP),
		slog.Any("backends", served),
		slog.Duration("auth_cache_ttl", c.AuthCacheTTL),
	)
}

// checkOrigin accepts a serialized origin: scheme, host and optional port, nothing else.
func checkOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLocalURL(s)) {
		return errors.New("must be https (http only for localhost)")
	}
	if u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("must be an origin like https://console.example.com (no path, query or user)")
	}
	if u.String() != strings.ToLower(s) {
		return errors.New("must be lower case, as browsers serialize origins")
	}
	return nil
}

// isLocalURL reports whether a URL names this machine (localhost, *.localhost or a loopback
// address), which is what development configurations point at.
func isLocalURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type parser struct {
	getenv   func(string) string
	problems []string
}

func (p *parser) fail(msg string) { p.problems = append(p.problems, msg) }

func (p *parser) str(key string) string { return strings.TrimSpace(p.getenv(key)) }

func (p *parser) required(key string) string {
	v := p.str(key)
	if v == "" {
		p.fail(key + " is required")
	}
	return v
}

func (p *parser) int(key string, def int) int {
	v := p.str(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(key + ": want an integer")
	}
	return n
}

func (p *parser) float(key string, def float64) float64 {
	v := p.str(key)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.fail(key + ": want a number")
	}
	return f
}

func (p *parser) duration(key string, def time.Duration) time.Duration {
	v := p.str(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.fail(key + ": want a duration like 5s")
	}
	return d
}
