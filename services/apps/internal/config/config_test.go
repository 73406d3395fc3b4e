package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	base := map[string]string{
		"FORGE_GRPC_ADDR": "127.0.0.1:9102", "FORGE_TLS_CERT": "c", "FORGE_TLS_KEY": "k", "FORGE_TLS_CA": "ca",
	}
	tests := []struct {
		name       string
		env        map[string]string
		wantErr    string
		serveError string
	}{
		{name: "migrate needs no dependencies", env: map[string]string{}, serveError: "FORGE_BLOB_URL is required"},
		{name: "serve", env: map[string]string{"FORGE_BLOB_URL": "file:///tmp/x", "FORGE_VAULT_ADDR": "v:1", "FORGE_TENANT_ADDR": "t:1",
			"FORGE_SANDBOX_DOMAIN": "apps.localhost:8090"}},
		{name: "blob URL without scheme", env: map[string]string{"FORGE_BLOB_URL": "/tmp/x"}, wantErr: "FORGE_BLOB_URL"},
		{name: "sandbox domain with a path", env: map[string]string{"FORGE_SANDBOX_DOMAIN": "apps.localhost/x"}, wantErr: "FORGE_SANDBOX_DOMAIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := Load(func(k string) string { return env[k] })
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.serveError != "" {
				require.ErrorContains(t, c.RequireServe(), tt.serveError)
				return
			}
			require.NoError(t, c.RequireServe())
		})
	}
}
