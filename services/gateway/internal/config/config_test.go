package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/gateway/internal/config"
)

func env(overrides map[string]string) func(string) string {
	base := map[string]string{
		"FORGE_GRPC_ADDR":      "127.0.0.1:9100",
		"FORGE_TLS_CERT":       "gateway.pem",
		"FORGE_TLS_KEY":        "gateway-key.pem",
		"FORGE_TLS_CA":         "ca.pem",
		"FORGE_HTTP_ADDR":      "127.0.0.1:8080",
		"FORGE_EDGE_CERT":      "edge.pem",
		"FORGE_EDGE_KEY":       "edge-key.pem",
		"FORGE_TENANT_ADDR":    "127.0.0.1:9101",
		"FORGE_CONSOLE_ORIGIN": "https://console.forge.example",
		"FORGE_OIDC_ISSUER":    "https://accounts.example.com",
		"FORGE_OIDC_AUDIENCE":  "forge-console",
		"NATS_URL":             "nats://127.0.0.1:4222",
	}
	for k, v := range overrides {
		base[k] = v
	}
	return func(k string) string { return base[k] }
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c config.Config)
	}{
		{name: "production", check: func(t *testing.T, c config.Config) {
			require.False(t, c.DevIdP)
			require.Equal(t, "https://accounts.example.com", c.OIDCIssuer)
			require.Empty(t, c.Apps.Addr, "unset services are not served")
		}},
		{name: "issuer required outside development", env: map[string]string{"FORGE_OIDC_ISSUER": ""}, wantErr: "FORGE_OIDC_ISSUER is required"},
		{name: "audience required outside development", env: map[string]string{"FORGE_OIDC_AUDIENCE": ""}, wantErr: "FORGE_OIDC_AUDIENCE is required"},
		{name: "plain http issuer", env: map[string]string{"FORGE_OIDC_ISSUER": "http://accounts.example.com"}, wantErr: "must be an https URL"},
		{name: "tenant required", env: map[string]string{"FORGE_TENANT_ADDR": ""}, wantErr: "FORGE_TENANT_ADDR is required"},
		{name: "console origin with a path", env: map[string]string{"FORGE_CONSOLE_ORIGIN": "https://console.forge.example/app"}, wantErr: "FORGE_CONSOLE_ORIGIN"},
		{name: "console origin over http", env: map[string]string{"FORGE_CONSOLE_ORIGIN": "http://console.forge.example"}, wantErr: "FORGE_CONSOLE_ORIGIN"},
		{name: "console origin wildcard", env: map[string]string{"FORGE_CONSOLE_ORIGIN": "*"}, wantErr: "FORGE_CONSOLE_ORIGIN"},
		{name: "development: the built-in provider", env: map[string]string{
			"FORGE_DEV_MODE": "1", "FORGE_OIDC_ISSUER": "", "FORGE_OIDC_AUDIENCE": "", "FORGE_CONSOLE_ORIGIN": "https://localhost:8080",
		}, check: func(t *testing.T, c config.Config) {
			require.True(t, c.DevIdP)
			require.Equal(t, config.DevAudience, c.OIDCAudience)
			require.Equal(t, "ca.pem", c.OIDCCAFile, "the development CA signs the edge certificate the provider is served with")
		}},
		{name: "development with a local external issuer", env: map[string]string{
			"FORGE_DEV_MODE": "1", "FORGE_OIDC_ISSUER": "https://localhost:5556/dex", "FORGE_CONSOLE_ORIGIN": "https://localhost:8080",
		}, check: func(t *testing.T, c config.Config) { require.False(t, c.DevIdP) }},
		{name: "development with a production issuer is refused", env: map[string]string{
			"FORGE_DEV_MODE": "1", "FORGE_CONSOLE_ORIGIN": "https://localhost:8080",
		}, wantErr: "looks like production"},
		{name: "development with a production console is refused", env: map[string]string{
			"FORGE_DEV_MODE": "1", "FORGE_OIDC_ISSUER": "",
		}, wantErr: "looks like production"},
		{name: "cache TTL bounded", env: map[string]string{"FORGE_AUTH_CACHE_TTL": "10m"}, wantErr: "FORGE_AUTH_CACHE_TTL"},
		{name: "cache needs the revocation feed", env: map[string]string{"NATS_URL": ""}, wantErr: "NATS_URL is required"},
		{name: "no cache, no NATS", env: map[string]string{"NATS_URL": "", "FORGE_AUTH_CACHE_TTL": "0s"}},
		{name: "rate limits positive", env: map[string]string{"FORGE_RATE_TENANT_RPS": "0"}, wantErr: "FORGE_RATE_TENANT"},
		{name: "upload limit at least the body limit", env: map[string]string{"FORGE_MAX_BODY_BYTES": "2000000", "FORGE_MAX_UPLOAD_BYTES": "1000000"}, wantErr: "FORGE_MAX_UPLOAD_BYTES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(env(tt.env))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
