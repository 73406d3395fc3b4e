package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func base() map[string]string {
	return map[string]string{
		"FORGE_GRPC_ADDR": "127.0.0.1:9105", "FORGE_TLS_CERT": "/c", "FORGE_TLS_KEY": "/k", "FORGE_TLS_CA": "/ca",
		"FORGE_TENANT_ADDR": "t:1", "FORGE_APPS_ADDR": "a:1", "FORGE_VAULT_ADDR": "v:1",
		"FORGE_BLOB_URL": "file:///srv/blob/data-lifecycle",
	}
}

func TestLoad(t *testing.T) {
	m := base()
	_, err := config.Load(env(m))
	require.ErrorContains(t, err, "FORGE_BACKUP_BLOB_URL is required", "production needs the backup bucket")

	m["FORGE_DEV_MODE"] = "1"
	c, err := config.Load(env(m))
	require.NoError(t, err)
	require.Equal(t, "file:///srv/blob/data-lifecycle-backups?create_dir=true", c.BackupBlobURL)
	require.True(t, c.CreateSigningKey)

	m = base()
	m["FORGE_BACKUP_BLOB_URL"] = m["FORGE_BLOB_URL"]
	_, err = config.Load(env(m))
	require.ErrorContains(t, err, "must differ")

	m["FORGE_BACKUP_BLOB_URL"] = "file:///srv/backups"
	m["FORGE_BACKUP_RETENTION"] = "721h"
	_, err = config.Load(env(m))
	require.ErrorContains(t, err, "at most 720h")

	delete(m, "FORGE_BACKUP_RETENTION")
	c, err = config.Load(env(m))
	require.NoError(t, err)
	require.Equal(t, config.DefaultSigningKeyFile, c.SigningKeyFile)
	require.False(t, c.CreateSigningKey, "never outside development mode")
}

func TestTargets(t *testing.T) {
	ts, err := config.ParseTargets(config.DefaultTargets)
	require.NoError(t, err)
	require.Len(t, ts, 5)
	for _, tg := range ts {
		if tg.Service == "secrets-vault" {
			require.Equal(t, []string{config.VaultKeyTable}, tg.ExcludeData, "the vault's wrapped keys are never dumped")
		}
	}
	_, err = config.ParseTargets("tenant=tenant")
	require.Error(t, err)
}
