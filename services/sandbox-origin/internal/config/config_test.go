package config_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/config"
)

func env(over map[string]string) func(string) string {
	base := map[string]string{
		"FORGE_GRPC_ADDR": "127.0.0.1:9104", "FORGE_TLS_CERT": "c", "FORGE_TLS_KEY": "k", "FORGE_TLS_CA": "ca",
		"FORGE_HTTP_ADDR": "127.0.0.1:8090", "FORGE_SANDBOX_DOMAIN": "apps.localhost:8090",
		"FORGE_CONSOLE_ORIGIN": "https://localhost:8080", "FORGE_EDGE_CERT": "e", "FORGE_EDGE_KEY": "ek",
		"FORGE_APPS_ADDR": "127.0.0.1:9102", "FORGE_VAULT_ADDR": "127.0.0.1:9103",
	}
	for k, v := range over {
		base[k] = v
	}
	return func(k string) string { return base[k] }
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw")
	require.NoError(t, os.WriteFile(raw, []byte(strings.Repeat("k", 32)), 0o600))
	b64 := filepath.Join(dir, "b64")
	require.NoError(t, os.WriteFile(b64, []byte(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 32)))+"\n"), 0o600))
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("abc"), 0o600))

	c, err := config.Load(env(nil))
	require.NoError(t, err)
	require.Equal(t, 60*time.Second, c.TicketTTL)
	require.Equal(t, 10*time.Minute, c.GrantTTL)
	require.True(t, c.GrantKey.IsZero())
	require.EqualValues(t, 1<<20, c.Proxy.MaxRequestBytes)

	c, err = config.Load(env(map[string]string{"FORGE_SANDBOX_GRANT_KEY_FILE": b64,
		"FORGE_PROXY_ALLOW_HOSTS": " API.upstream.test:8443=127.0.0.1 , other.test "}))
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("x", 32), c.GrantKey.Reveal())
	require.Equal(t, []string{"api.upstream.test:8443=127.0.0.1", "other.test"}, c.Proxy.AllowHosts)
	require.Equal(t, "REDACTED", c.GrantKey.String())

	for _, tc := range []struct {
		name string
		over map[string]string
	}{
		{"no http address", map[string]string{"FORGE_HTTP_ADDR": ""}},
		{"no sandbox domain", map[string]string{"FORGE_SANDBOX_DOMAIN": ""}},
		{"no console origin", map[string]string{"FORGE_CONSOLE_ORIGIN": ""}},
		{"console origin with a path", map[string]string{"FORGE_CONSOLE_ORIGIN": "https://localhost:8080/app"}},
		{"console origin with a trailing slash", map[string]string{"FORGE_CONSOLE_ORIGIN": "https://localhost:8080/"}},
		{"console origin over http", map[string]string{"FORGE_CONSOLE_ORIGIN": "http://console.example"}},
		{"console origin wildcard", map[string]string{"FORGE_CONSOLE_ORIGIN": "*"}},
		{"no edge certificate", map[string]string{"FORGE_EDGE_CERT": ""}},
		{"no apps", map[string]string{"FORGE_APPS_ADDR": ""}},
		{"no vault", map[string]string{"FORGE_VAULT_ADDR": ""}},
		{"bad ttl", map[string]string{"FORGE_SANDBOX_TICKET_TTL": "-1s"}},
		{"bad limit", map[string]string{"FORGE_PROXY_MAX_RESPONSE_BYTES": "lots"}},
		{"header timeout over total", map[string]string{"FORGE_PROXY_TIMEOUT": "1s", "FORGE_PROXY_HEADER_TIMEOUT": "5s"}},
		{"short key", map[string]string{"FORGE_SANDBOX_GRANT_KEY_FILE": short}},
		{"missing key file", map[string]string{"FORGE_SANDBOX_GRANT_KEY_FILE": filepath.Join(dir, "nope")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(env(tc.over))
			require.Error(t, err)
		})
	}
	_, err = config.Load(env(map[string]string{"FORGE_SANDBOX_GRANT_KEY_FILE": raw}))
	require.NoError(t, err)
}
