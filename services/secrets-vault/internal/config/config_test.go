package config

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(extra map[string]string) func(string) string {
	m := map[string]string{
		"FORGE_GRPC_ADDR": "127.0.0.1:9103",
		"FORGE_TLS_CERT":  "/c.pem", "FORGE_TLS_KEY": "/k.pem", "FORGE_TLS_CA": "/ca.pem",
		"FORGE_KEY_PROVIDER":       "file:///dev/kek",
		"FORGE_KEYRING_BACKUP_URL": "file:///tmp/keyring",
	}
	for k, v := range extra {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		loadErr  bool
		serveErr bool
		check    func(t *testing.T, c Config)
	}{
		{"defaults", nil, false, false, func(t *testing.T, c Config) {
			require.Equal(t, 10000, c.KeyCacheSize)
			require.Equal(t, 5*time.Minute, c.KeyCacheTTL)
			require.Equal(t, time.Minute, c.RewrapInterval)
			require.Equal(t, "secrets-vault", c.Name)
		}},
		{"tuned", map[string]string{"FORGE_VAULT_KEY_CACHE_SIZE": "5", "FORGE_VAULT_KEY_CACHE_TTL": "30s", "FORGE_VAULT_REWRAP_INTERVAL": "10s"}, false, false,
			func(t *testing.T, c Config) {
				require.Equal(t, 5, c.KeyCacheSize)
				require.Equal(t, 30*time.Second, c.KeyCacheTTL)
				require.Equal(t, 10*time.Second, c.RewrapInterval)
			}},
		{"cache off", map[string]string{"FORGE_VAULT_KEY_CACHE_SIZE": "0"}, false, false, func(t *testing.T, c Config) {
			require.Negative(t, c.KeyCacheSize)
		}},
		{"bad cache size", map[string]string{"FORGE_VAULT_KEY_CACHE_SIZE": "-1"}, true, false, nil},
		{"bad ttl", map[string]string{"FORGE_VAULT_KEY_CACHE_TTL": "soon"}, true, false, nil},
		{"bad backup url", map[string]string{"FORGE_KEYRING_BACKUP_URL": "no-scheme"}, true, false, nil},
		{"no key provider (migrate is fine)", map[string]string{"FORGE_KEY_PROVIDER": ""}, false, true, nil},
		{"no backup url (migrate is fine)", map[string]string{"FORGE_KEYRING_BACKUP_URL": ""}, false, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load(env(c.env))
			if c.loadErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			if c.serveErr {
				require.Error(t, cfg.RequireServe())
			} else {
				require.NoError(t, cfg.RequireServe())
			}
			if c.check != nil {
				c.check(t, cfg)
			}
		})
	}
}

func TestLoadRestoreKeyring(t *testing.T) {
	full := map[string]string{
		"MIGRATION_DATABASE_URL":   "postgres://secrets_vault_migrate:hunter2@db/secrets_vault",
		"FORGE_KEY_PROVIDER":       "file:///dev/kek",
		"FORGE_KEYRING_BACKUP_URL": "file:///tmp/keyring",
	}
	cases := []struct {
		name    string
		without string
		set     map[string]string
		wantErr string
	}{
		{name: "complete, and nothing of serve's needed"},
		{name: "no database", without: "MIGRATION_DATABASE_URL", wantErr: "MIGRATION_DATABASE_URL"},
		{name: "no key provider", without: "FORGE_KEY_PROVIDER", wantErr: "FORGE_KEY_PROVIDER"},
		{name: "no bucket", without: "FORGE_KEYRING_BACKUP_URL", wantErr: "FORGE_KEYRING_BACKUP_URL"},
		{name: "bucket without scheme", set: map[string]string{"FORGE_KEYRING_BACKUP_URL": "/tmp/keyring"}, wantErr: "FORGE_KEYRING_BACKUP_URL"},
		// The runtime URL is not what it reads: the tables' owner writes the keys.
		{name: "runtime URL only", without: "MIGRATION_DATABASE_URL", set: map[string]string{"DATABASE_URL": "postgres://app@db/x"}, wantErr: "MIGRATION_DATABASE_URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range full {
				if k != c.without {
					m[k] = v
				}
			}
			for k, v := range c.set {
				m[k] = v
			}
			cfg, err := LoadRestoreKeyring(func(k string) string { return m[k] })
			if c.wantErr != "" {
				require.ErrorContains(t, err, c.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, full["MIGRATION_DATABASE_URL"], cfg.MigrationDatabaseURL.Reveal())
			require.Equal(t, "file:///dev/kek", cfg.KeyProvider)
			require.Equal(t, "file:///tmp/keyring", cfg.KeyringBackupURL)
			require.NotContains(t, fmt.Sprint(cfg.LogValue()), "hunter2", "the database password is never logged")
		})
	}
}
