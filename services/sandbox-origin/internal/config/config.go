// Package config is the only place the sandbox origin reads its environment: the settings
// every service shares (service.LoadBase) and the browser-facing ones of this service, checked
// once at start so that a wrong value stops the process instead of weakening the sandbox.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/forgeapps/backbone/pkg/secret"
	"github.com/forgeapps/backbone/pkg/service"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Config is the sandbox origin's configuration.
type Config struct {
	Base service.Base

	// HTTPAddr is where the HTTPS server for the app origins listens (FORGE_HTTP_ADDR).
	HTTPAddr string
	// SandboxDomain is the domain under which every app has its own origin
	// (FORGE_SANDBOX_DOMAIN, "apps.localhost:8090" in development): host and optional port.
	SandboxDomain string
	// ConsoleOrigin is the only origin allowed to frame an app (FORGE_CONSOLE_ORIGIN).
	ConsoleOrigin string
	// EdgeCert and EdgeKey are the browser-facing certificate (*.<sandbox domain>).
	EdgeCert, EdgeKey string
	// AppsAddr and VaultAddr are the gRPC addresses of apps and secrets-vault.
	AppsAddr, VaultAddr string

	// GrantKey seals the per-origin cookies. Every replica needs the same key
	// (FORGE_SANDBOX_GRANT_KEY_FILE); when unset, main makes a random one at start, which only
	// works for a single replica (development).
	GrantKey secret.Value

	// TicketTTL is how long a view ticket can be exchanged (FORGE_SANDBOX_TICKET_TTL, 60s).
	TicketTTL time.Duration
	// GrantTTL is how long an origin cookie works (FORGE_SANDBOX_GRANT_TTL, 10m).
	GrantTTL time.Duration
	// CacheTTL bounds how stale a cached app may be if an invalidation event were lost
	// (FORGE_SANDBOX_CACHE_TTL, 30s).
	CacheTTL time.Duration
	// CacheMaxBytes and CacheMaxApps bound the file cache (FORGE_SANDBOX_CACHE_MAX_BYTES,
	// 256 MiB; FORGE_SANDBOX_CACHE_MAX_APPS, 1000).
	CacheMaxBytes int64
	CacheMaxApps  int

	Proxy Proxy
}

// Proxy configures the request-time secret proxy.
type Proxy struct {
	// AllowHosts lists upstream hosts ("host", "host:port", or "host[:port]=ip" to pin the name
	// to an address) that may resolve to loopback or private addresses: development and tests
	// only (FORGE_PROXY_ALLOW_HOSTS, comma-separated).
	AllowHosts []string
	// RootCAsFile adds trusted roots for upstream TLS (FORGE_PROXY_ROOT_CAS; development).
	RootCAsFile string
	// MaxRequestBytes and MaxResponseBytes bound the bodies (FORGE_PROXY_MAX_REQUEST_BYTES,
	// 1 MiB; FORGE_PROXY_MAX_RESPONSE_BYTES, 10 MiB).
	MaxRequestBytes, MaxResponseBytes int64
	// Timeout bounds one upstream exchange, body included (FORGE_PROXY_TIMEOUT, 30s);
	// HeaderTimeout the wait for the response headers (FORGE_PROXY_HEADER_TIMEOUT, 10s).
	Timeout, HeaderTimeout time.Duration
	// RatePerSecond and Burst limit calls per app and replica (FORGE_PROXY_RATE, 10;
	// FORGE_PROXY_BURST, 20).
	RatePerSecond float64
	Burst         int
}

// Load reads the configuration through getenv.
func Load(getenv func(string) string) (Config, error) {
	base, err := service.LoadBase(workload.SandboxOrigin, getenv)
	if err != nil {
		return Config{}, err
	}
	var problems []string
	req := func(key string) string {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			problems = append(problems, key+" is required")
		}
		return v
	}
	dur := func(key string, def time.Duration) time.Duration {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			problems = append(problems, key+": want a positive duration like 30s")
			return def
		}
		return d
	}
	num := func(key string, def int64) int64 {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			problems = append(problems, key+": want a positive integer")
			return def
		}
		return n
	}
	c := Config{
		Base:          base,
		HTTPAddr:      req("FORGE_HTTP_ADDR"),
		SandboxDomain: req("FORGE_SANDBOX_DOMAIN"),
		ConsoleOrigin: req("FORGE_CONSOLE_ORIGIN"),
		EdgeCert:      req("FORGE_EDGE_CERT"),
		EdgeKey:       req("FORGE_EDGE_KEY"),
		AppsAddr:      req("FORGE_APPS_ADDR"),
		VaultAddr:     req("FORGE_VAULT_ADDR"),
		TicketTTL:     dur("FORGE_SANDBOX_TICKET_TTL", 60*time.Second),
		GrantTTL:      dur("FORGE_SANDBOX_GRANT_TTL", 10*time.Minute),
		CacheTTL:      dur("FORGE_SANDBOX_CACHE_TTL", 30*time.Second),
		CacheMaxBytes: num("FORGE_SANDBOX_CACHE_MAX_BYTES", 256<<20),
		CacheMaxApps:  int(num("FORGE_SANDBOX_CACHE_MAX_APPS", 1000)),
		Proxy: Proxy{
			RootCAsFile:      strings.TrimSpace(getenv("FORGE_PROXY_ROOT_CAS")),
			MaxRequestBytes:  num("FORGE_PROXY_MAX_REQUEST_BYTES", 1<<20),
			MaxResponseBytes: num("FORGE_PROXY_MAX_RESPONSE_BYTES", 10<<20),
			Timeout:          dur("FORGE_PROXY_TIMEOUT", 30*time.Second),
			HeaderTimeout:    dur("FORGE_PROXY_HEADER_TIMEOUT", 10*time.Second),
			RatePerSecond:    float64(num("FORGE_PROXY_RATE", 10)),
			Burst:            int(num("FORGE_PROXY_BURST", 20)),
		},
	}
	for _, h := range strings.Split(getenv("FORGE_PROXY_ALLOW_HOSTS"), ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			c.Proxy.AllowHosts = append(c.Proxy.AllowHosts, h)
		}
	}
	if c.ConsoleOrigin != "" {
		if err := checkOrigin(c.ConsoleOrigin); err != nil {
			problems = append(problems, "FORGE_CONSOLE_ORIGIN: "+err.Error())
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			problems = append(problems, "FORGE_HTTP_ADDR: want host:port")
		}
	}
	if c.Proxy.Timeout < c.Proxy.HeaderTimeout {
		problems = append(problems, "FORGE_PROXY_TIMEOUT must not be shorter than FORGE_PROXY_HEADER_TIMEOUT")
	}
	if path := strings.TrimSpace(getenv("FORGE_SANDBOX_GRANT_KEY_FILE")); path != "" {
		key, err := readKey(path)
		if err != nil {
			problems = append(problems, "FORGE_SANDBOX_GRANT_KEY_FILE: "+err.Error())
		}
		c.GrantKey = key
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("sandbox-origin configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// checkOrigin accepts a serialized origin: scheme https (or http for localhost), a host, an
// optional port, nothing else. It is compared byte for byte with what browsers send.
func checkOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "https" && !(u.Scheme == "http" && u.Hostname() == "localhost"):
		return errors.New("want an https origin")
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return errors.New("want scheme://host[:port] and nothing else")
	case strings.HasSuffix(s, "/") || s != strings.ToLower(s):
		return errors.New("want the serialized origin: lower case, no trailing slash")
	}
	return nil
}

// readKey reads a 256-bit key: 32 raw bytes, or their standard base64 encoding.
func readKey(path string) (secret.Value, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return secret.Value{}, errors.New("cannot read the file")
	}
	if len(b) == 32 {
		return secret.New(string(b)), nil
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(dec) != 32 {
		return secret.Value{}, errors.New("want 32 bytes, raw or base64")
	}
	return secret.New(string(dec)), nil
}

// LogValue says what is configured without printing the grant key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("base", c.Base), slog.String("http_addr", c.HTTPAddr),
		slog.String("sandbox_domain", c.SandboxDomain), slog.String("console_origin", c.ConsoleOrigin),
		slog.Bool("grant_key_configured", !c.GrantKey.IsZero()),
		slog.Any("proxy_allow_hosts", c.Proxy.AllowHosts),
	)
}
