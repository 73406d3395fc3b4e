// Package config is the only place data-lifecycle reads its environment: the settings every
// service shares (pkg/service) and its own, checked at start.
package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/forgeapps/backbone/pkg/secret"
	"github.com/forgeapps/backbone/pkg/service"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
)

// Name is the service's workload name.
const Name = "data-lifecycle"

// Config is data-lifecycle's configuration.
type Config struct {
	service.Base
	TenantAddr, AppsAddr, VaultAddr string
	// BlobURL is the region's object storage (export archives).
	BlobURL string
	// BackupBlobURL is the backup bucket: database dumps and the deletion ledger.
	BackupBlobURL string
	// SigningKeyFile holds the Ed25519 key that signs deletion certificates (PEM, 0600).
	SigningKeyFile string
	// CreateSigningKey (development mode only) makes a signing key when the file is missing.
	CreateSigningKey bool
	// Tick is the scheduler's period; PurgeRetryAfter how long a purge may stay incomplete
	// before it is fanned out again; BackupRetention how long backups are kept.
	Tick            time.Duration
	PurgeRetryAfter time.Duration
	BackupRetention time.Duration
}

// DefaultSigningKeyFile is where the Deployment mounts the certificate signing key (Secret
// data-lifecycle-signing-key, key key.pem).
const DefaultSigningKeyFile = "/etc/forge/lifecycle-signing/key.pem"

// Load reads the serve configuration through getenv.
func Load(getenv func(string) string) (Config, error) {
	base, err := service.LoadBase(Name, getenv)
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
	c := Config{
		Base:           base,
		TenantAddr:     req("FORGE_TENANT_ADDR"),
		AppsAddr:       req("FORGE_APPS_ADDR"),
		VaultAddr:      req("FORGE_VAULT_ADDR"),
		BlobURL:        req("FORGE_BLOB_URL"),
		BackupBlobURL:  strings.TrimSpace(getenv("FORGE_BACKUP_BLOB_URL")),
		SigningKeyFile: strings.TrimSpace(getenv("FORGE_CERT_SIGNING_KEY")),
	}
	if base.DevMode && strings.HasPrefix(c.BlobURL, "file://") && !strings.Contains(c.BlobURL, "?") {
		// Development conveniences (`make run`): the backup bucket and the signing key sit
		// next to the local object storage; Setup creates the key when it is missing.
		dir := strings.TrimSuffix(strings.TrimPrefix(c.BlobURL, "file://"), "/")
		if c.BackupBlobURL == "" {
			c.BackupBlobURL = "file://" + dir + "-backups?create_dir=true"
		}
		if c.SigningKeyFile == "" {
			c.SigningKeyFile = dir + "-signing.pem"
			c.CreateSigningKey = true
		}
	}
	if c.BackupBlobURL == "" {
		problems = append(problems, "FORGE_BACKUP_BLOB_URL is required")
	}
	if c.SigningKeyFile == "" {
		c.SigningKeyFile = DefaultSigningKeyFile
	}
	c.Tick = duration(getenv, "FORGE_LIFECYCLE_TICK", 5*time.Second, &problems)
	c.PurgeRetryAfter = duration(getenv, "FORGE_PURGE_RETRY_AFTER", 10*time.Minute, &problems)
	c.BackupRetention = duration(getenv, "FORGE_BACKUP_RETENTION", lifecycle.DefaultBackupRetention, &problems)
	if c.BackupRetention > lifecycle.DefaultBackupRetention {
		problems = append(problems, "FORGE_BACKUP_RETENTION: at most 720h (the deletion promise)")
	}
	if c.BlobURL != "" && c.BlobURL == c.BackupBlobURL {
		problems = append(problems, "FORGE_BACKUP_BLOB_URL must differ from FORGE_BLOB_URL")
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("%s configuration: %s", Name, strings.Join(problems, "; "))
	}
	return c, nil
}

func duration(getenv func(string) string, key string, def time.Duration, problems *[]string) time.Duration {
	v := strings.TrimSpace(getenv(key))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		*problems = append(*problems, key+": want a positive duration like 30s")
		return def
	}
	return d
}

// Backup is the configuration of `data-lifecycle backup` (and restore, prune).
type Backup struct {
	// DatabaseURL reaches the server as the backup role (BYPASSRLS, read-only); each target's
	// database replaces its path.
	DatabaseURL secret.Value
	BlobURL     string
	KeyProvider string
	Targets     []Target
	Retention   time.Duration
}

// Target is one service database to back up.
type Target struct {
	Service  string
	Database string
	Schema   string
	// ExcludeData lists tables whose rows are never dumped (their definition is): the vault's
	// wrapped tenant keys, whose only backups are the vault's own keyring backups, which a
	// shred reaches.
	ExcludeData []string
}

// DefaultTargets are the production databases (deploy/k8s/deps/base/postgres).
const DefaultTargets = "tenant=tenant/tenant,apps=apps/apps,secrets-vault=secrets_vault/vault,sandbox-origin=sandbox_origin/sandbox,data-lifecycle=data_lifecycle/lifecycle"

// VaultKeyTable is secrets-vault's table of wrapped tenant keys.
const VaultKeyTable = "tenant_keys"

// Restore is the configuration of `restore`: where the dumps are, the key that opens them, and
// the database to load. The target URL carries the migration role's password, so it comes
// from the environment (a Secret in Kubernetes), never from the command line, where every
// user of the machine can read it (ps, /proc/<pid>/cmdline).
type Restore struct {
	// TargetURL is the migrated, empty database to load, as its migration role
	// (RESTORE_DATABASE_URL).
	TargetURL   secret.Value
	BlobURL     string
	KeyProvider string
}

// LoadRestore reads the restore command's configuration. It needs no backup database: a
// restore reads the bucket and writes the target only.
func LoadRestore(getenv func(string) string) (Restore, error) {
	var problems []string
	req := func(key string) string {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			problems = append(problems, key+" is required")
		}
		return v
	}
	r := Restore{
		TargetURL:   secret.New(req("RESTORE_DATABASE_URL")),
		BlobURL:     req("FORGE_BACKUP_BLOB_URL"),
		KeyProvider: req("FORGE_KEY_PROVIDER"),
	}
	if len(problems) > 0 {
		return Restore{}, fmt.Errorf("%s restore configuration: %s", Name, strings.Join(problems, "; "))
	}
	return r, nil
}

// LoadBackup reads the backup job's configuration.
func LoadBackup(getenv func(string) string) (Backup, error) {
	var problems []string
	req := func(key string) string {
		v := strings.TrimSpace(getenv(key))
		if v == "" {
			problems = append(problems, key+" is required")
		}
		return v
	}
	b := Backup{
		DatabaseURL: secret.New(req("BACKUP_DATABASE_URL")),
		BlobURL:     req("FORGE_BACKUP_BLOB_URL"),
		KeyProvider: req("FORGE_KEY_PROVIDER"),
	}
	b.Retention = duration(getenv, "FORGE_BACKUP_RETENTION", lifecycle.DefaultBackupRetention, &problems)
	if b.Retention > lifecycle.DefaultBackupRetention {
		problems = append(problems, "FORGE_BACKUP_RETENTION: at most 720h (the deletion promise)")
	}
	targets := strings.TrimSpace(getenv("FORGE_BACKUP_TARGETS"))
	if targets == "" {
		targets = DefaultTargets
	}
	ts, err := ParseTargets(targets)
	if err != nil {
		problems = append(problems, "FORGE_BACKUP_TARGETS: "+err.Error())
	}
	b.Targets = ts
	if len(problems) > 0 {
		return Backup{}, fmt.Errorf("%s backup configuration: %s", Name, strings.Join(problems, "; "))
	}
	return b, nil
}

// ParseTargets reads "service=database/schema,..." and adds the vault's key-table exclusion.
func ParseTargets(s string) ([]Target, error) {
	var out []Target
	for _, part := range strings.Split(s, ",") {
		svc, rest, ok := strings.Cut(strings.TrimSpace(part), "=")
		db, schema, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || svc == "" || db == "" || schema == "" {
			return nil, fmt.Errorf("%q: want service=database/schema", part)
		}
		t := Target{Service: svc, Database: db, Schema: schema}
		if svc == "secrets-vault" {
			t.ExcludeData = []string{VaultKeyTable}
		}
		out = append(out, t)
	}
	return out, nil
}
