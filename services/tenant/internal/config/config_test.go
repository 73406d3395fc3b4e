package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/tenant/internal/config"
)

func TestLoad(t *testing.T) {
	base := map[string]string{
		"FORGE_GRPC_ADDR": ":9101", "FORGE_TLS_CERT": "c", "FORGE_TLS_KEY": "k", "FORGE_TLS_CA": "a",
	}
	with := func(kv ...string) func(string) string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name    string
		getenv  func(string) string
		wantErr string
		check   func(t *testing.T, c config.Config)
	}{
		{name: "defaults", getenv: with(), check: func(t *testing.T, c config.Config) {
			require.Equal(t, 7*24*time.Hour, c.SessionTTL)
			require.Equal(t, 1000, c.PurgeBatchSize)
			require.Equal(t, owner.USEast, c.Base.Region)
			require.Equal(t, "tenant", c.Base.Name)
		}},
		{name: "set", getenv: with("FORGE_SESSION_TTL", "12h", "FORGE_PURGE_BATCH_SIZE", "50", "FORGE_REGION", "eu-west"),
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, 12*time.Hour, c.SessionTTL)
				require.Equal(t, 50, c.PurgeBatchSize)
				require.Equal(t, owner.EUWest, c.Base.Region)
			}},
		{name: "ttl not a duration", getenv: with("FORGE_SESSION_TTL", "week"), wantErr: "FORGE_SESSION_TTL"},
		{name: "ttl too short", getenv: with("FORGE_SESSION_TTL", "1m"), wantErr: "FORGE_SESSION_TTL"},
		{name: "ttl too long", getenv: with("FORGE_SESSION_TTL", "10000h"), wantErr: "FORGE_SESSION_TTL"},
		{name: "batch zero", getenv: with("FORGE_PURGE_BATCH_SIZE", "0"), wantErr: "FORGE_PURGE_BATCH_SIZE"},
		{name: "batch huge", getenv: with("FORGE_PURGE_BATCH_SIZE", "10001"), wantErr: "FORGE_PURGE_BATCH_SIZE"},
		{name: "unknown region", getenv: with("FORGE_REGION", "mars"), wantErr: "FORGE_REGION"},
		{name: "bad base setting", getenv: func(k string) string {
			if k == "FORGE_REGION" {
				return "mars"
			}
			return ""
		}, wantErr: "FORGE_REGION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.getenv)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}
