// Package config reads the vault's configuration from the environment, in one place, and
// checks it at start: the settings every service shares (service.LoadBase) plus the vault's
// own (where the root key is, where keyring backups go, how long unwrapped keys are cached),
// and the few variables of the restore-keyring command.
package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/forgeapps/backbone/pkg/secret"
	"github.com/forgeapps/backbone/pkg/service"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Config is the vault's configuration.
type Config struct {
	service.Base
	// KeyProvider names the region's root key provider (FORGE_KEY_PROVIDER): file:///abs/path
	// in development. Required.
	KeyProvider string
	// KeyringBackupURL is the gocloud.dev bucket URL of the keyring backups
	// (FORGE_KEYRING_BACKUP_URL): file:///abs/dir in development, s3://bucket?region=... in
	// production. Required.
	KeyringBackupURL string
	// KeyCacheSize and KeyCacheTTL bound the in-memory cache of unwrapped tenant keys
	// (FORGE_VAULT_KEY_CACHE_SIZE, default 10000 tenants; FORGE_VAULT_KEY_CACHE_TTL, default 5m).
	KeyCacheSize int
	KeyCacheTTL  time.Duration
	// RewrapInterval is how often the background rewrap looks for secrets under old key
	// versions (FORGE_VAULT_REWRAP_INTERVAL, default 1m); it also runs right after a rotation.
	RewrapInterval time.Duration
}

// Load reads the configuration through getenv.
func Load(getenv func(string) string) (Config, error) {
	base, err := service.LoadBase(workload.SecretsVault, getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{Base: base, KeyCacheSize: 10000, KeyCacheTTL: 5 * time.Minute, RewrapInterval: time.Minute}
	var problems []string
	c.KeyProvider = strings.TrimSpace(getenv("FORGE_KEY_PROVIDER"))
	c.KeyringBackupURL = strings.TrimSpace(getenv("FORGE_KEYRING_BACKUP_URL"))
	if u, err := url.Parse(c.KeyringBackupURL); c.KeyringBackupURL != "" && (err != nil || u.Scheme == "") {
		problems = append(problems, "FORGE_KEYRING_BACKUP_URL: want a bucket URL such as file:///absolute/dir")
	}
	if v := getenv("FORGE_VAULT_KEY_CACHE_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			problems = append(problems, "FORGE_VAULT_KEY_CACHE_SIZE: want a number of tenants >= 0 (0 turns the cache off)")
		}
		c.KeyCacheSize = n
		if n == 0 {
			c.KeyCacheSize = -1
		}
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"FORGE_VAULT_KEY_CACHE_TTL", &c.KeyCacheTTL}, {"FORGE_VAULT_REWRAP_INTERVAL", &c.RewrapInterval}} {
		if v := getenv(d.key); v != "" {
			p, err := time.ParseDuration(v)
			if err != nil || p <= 0 {
				problems = append(problems, d.key+": want a positive duration like 5m")
			}
			*d.dst = p
		}
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("secrets-vault configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// RequireServe checks what `serve` needs beyond what `migrate` does: the root key provider
// and the keyring backup bucket (the migration job has neither, and must not).
func (c Config) RequireServe() error {
	var problems []string
	if c.KeyProvider == "" {
		problems = append(problems, "FORGE_KEY_PROVIDER is required (file:///absolute/path in development)")
	}
	if c.KeyringBackupURL == "" {
		problems = append(problems, "FORGE_KEYRING_BACKUP_URL is required (file:///absolute/dir in development)")
	}
	if len(problems) > 0 {
		return fmt.Errorf("secrets-vault configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}

// RestoreKeyring is the configuration of `secrets-vault restore-keyring`, which loads the
// wrapped tenant keys back from the keyring backups into a database restored from a dump. It
// reads these three variables and nothing else: no address, certificate or NATS, since it
// runs as a one-off Job while the vault is stopped.
type RestoreKeyring struct {
	// MigrationDatabaseURL is the migration role's URL (MIGRATION_DATABASE_URL, as `migrate`
	// reads it): the tables' owner writes the keys.
	MigrationDatabaseURL secret.Value
	// KeyProvider is the root key provider (FORGE_KEY_PROVIDER): every key is unwrapped once
	// to prove it usable before it is written.
	KeyProvider string
	// KeyringBackupURL is the keyring backup bucket (FORGE_KEYRING_BACKUP_URL) read back.
	KeyringBackupURL string
}

// LoadRestoreKeyring reads the restore-keyring configuration through getenv; all three
// variables are required.
func LoadRestoreKeyring(getenv func(string) string) (RestoreKeyring, error) {
	c := RestoreKeyring{
		MigrationDatabaseURL: secret.New(strings.TrimSpace(getenv("MIGRATION_DATABASE_URL"))),
		KeyProvider:          strings.TrimSpace(getenv("FORGE_KEY_PROVIDER")),
		KeyringBackupURL:     strings.TrimSpace(getenv("FORGE_KEYRING_BACKUP_URL")),
	}
	var problems []string
	if c.MigrationDatabaseURL.IsZero() {
		problems = append(problems, "MIGRATION_DATABASE_URL is required (the migration role's URL)")
	}
	if c.KeyProvider == "" {
		problems = append(problems, "FORGE_KEY_PROVIDER is required (file:///absolute/path in development)")
	}
	if u, err := url.Parse(c.KeyringBackupURL); err != nil || u.Scheme == "" {
		problems = append(problems, "FORGE_KEYRING_BACKUP_URL is required: a bucket URL such as file:///absolute/dir")
	}
	if len(problems) > 0 {
		return RestoreKeyring{}, fmt.Errorf("secrets-vault restore-keyring configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// LogValue logs the restore configuration without the database URL (it may hold a password).
func (c RestoreKeyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("migration_database_url", c.MigrationDatabaseURL),
		slog.String("key_provider", c.KeyProvider),
		slog.String("keyring_backup_url", c.KeyringBackupURL),
	)
}

// LogValue logs the configuration without anything secret (the key provider URL names a file
// or a KMS key, never the key itself).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("base", c.Base),
		slog.String("key_provider", c.KeyProvider),
		slog.String("keyring_backup_url", c.KeyringBackupURL),
		slog.Int("key_cache_size", c.KeyCacheSize),
		slog.Duration("key_cache_ttl", c.KeyCacheTTL),
		slog.Duration("rewrap_interval", c.RewrapInterval),
	)
}
