package vault

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
)

// Purpose is why a key is used or a secret read; every audit entry records one.
type Purpose string

// The purposes. Callers of the crypto API declare one of the first six; the vault records the
// others for its own work.
const (
	PurposeAppContent           Purpose = "app_content"
	PurposePromptOwnerView      Purpose = "prompt_owner_view"
	PurposePromptCollaboratorVw Purpose = "prompt_collaborator_view"
	PurposePromptBuild          Purpose = "prompt_build"
	PurposeExport               Purpose = "export"
	PurposeServe                Purpose = "serve"
	PurposeRewrap               Purpose = "rewrap"
	PurposeSecretManagement     Purpose = "secret_management"
)

// Actor is who uses a key, and why: the verified calling workload and its declared purpose.
type Actor struct {
	Workload string
	Purpose  Purpose
}

// Audit actions.
const (
	ActionEncrypt = "crypto.encrypt"
	ActionDecrypt = "crypto.decrypt"
	ActionRewrap  = "crypto.rewrap"
	// The data keys of envelope encryption (GenerateDataKeys, DecryptDataKeys).
	ActionGenerateDataKey = "crypto.generate_data_key"
	ActionDecryptDataKey  = "crypto.decrypt_data_key"
	ActionSecretPut       = "secret.put"
	ActionSecretRotate    = "secret.rotate"
	ActionSecretDelete    = "secret.delete"
	ActionSecretResolve   = "secret.resolve"
	ActionSecretRewrap    = "secret.rewrap"
	ActionSecretsExport   = "secret.export_metadata"
	ActionAppUnregister   = "app.unregister"
	ActionKeyCreate       = "key.create"
	ActionKeyRotate       = "key.rotate"
	ActionKeyRetire       = "key.retire"
)

// AuditEntry is one recorded key use or secret access. It never holds a value.
type AuditEntry struct {
	ID       uuid.UUID
	Time     time.Time
	Workload string
	Action   string
	// Subject is the secret name or the key versions used ("key v2").
	Subject string
	Purpose Purpose
	Items   int
}

// KeyringState is a tenant's key policy row. A shredded keyring is the tombstone: it holds no
// key material, only what was destroyed, and it stops a later first use from silently creating
// a fresh key for a purged tenant.
type KeyringState struct {
	Current    uint32
	MinDecrypt uint32
	Shredded   bool
	ShreddedAt time.Time
	// Destroyed lists the versions destroyed by the shred (tombstones only).
	Destroyed      []uint32
	SecretsDeleted int64
	RowsDeleted    int64
}

// InjectionKind says where a secret value goes in the outbound request.
type InjectionKind int

// The injection kinds.
const (
	InjectHeader InjectionKind = iota + 1
	InjectQuery
)

// Injection says how the secret proxy puts a value into the request to the upstream.
type Injection struct {
	Kind       InjectionKind
	HeaderName string
	Prefix     string
	QueryParam string
}

// Secret is what may be shown of a secret: never its value.
type Secret struct {
	AppID        uuid.UUID
	Name         string
	UpstreamHost string
	Injection    Injection
	Created      time.Time
	Rotated      time.Time
	KeyVersion   uint32
}

// StoredSecret is a secret row with its sealed value.
type StoredSecret struct {
	Secret
	Ciphertext []byte
}

// NewSecret is a secret to store.
type NewSecret struct {
	AppID        uuid.UUID
	Name         string
	Value        secret.Value
	UpstreamHost string
	Injection    Injection
}

// Resolved is a secret value with where and how it may be sent.
type Resolved struct {
	Value        secret.Value
	UpstreamHost string
	Injection    Injection
}

// UseCheck is what an audited key use requires of the stored key policy at commit time.
type UseCheck struct {
	// OldestVersion is the oldest key version the use opened (0 when it opened none): it must
	// not be below the minimum decryption version.
	OldestVersion uint32
	// Current, when not 0, must be the current version (the use sealed under it).
	Current uint32
	// AsyncCommit lets the use's transaction commit without waiting for its WAL flush
	// (synchronous_commit = off). The vault sets it from asyncAudit alone.
	AsyncCommit bool
}

// Store is the vault's storage. Every tenant operation runs in an owner transaction.
type Store interface {
	Tx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx StoreTx) error) error
	// StaleOwners lists up to limit tenants (not shredded) with secrets sealed under a key
	// version older than their current one: owner IDs only, for the rewrap job.
	StaleOwners(ctx context.Context, limit int) ([]owner.ID, error)
}

// StoreTx is one owner transaction. Every method acts for that owner only.
type StoreTx interface {
	// Keyring reads the key policy (ErrNoKeyring when the tenant never had a key); lock takes
	// the row FOR UPDATE.
	Keyring(ctx context.Context, lock bool) (KeyringState, error)
	// CreateKeyring inserts the policy row at version 1 unless one exists (created reports it).
	CreateKeyring(ctx context.Context) (created bool, err error)
	SetKeyring(ctx context.Context, current, minDecrypt uint32) error
	InsertKey(ctx context.Context, k WrappedKey) error
	// Keys returns the stored key versions >= minVersion.
	Keys(ctx context.Context, minVersion uint32) ([]WrappedKey, error)
	// DeleteKeysBelow destroys the key rows below version and returns their versions.
	DeleteKeysBelow(ctx context.Context, version uint32) ([]uint32, error)

	// Tombstone marks the keyring shredded (creating it if the tenant never had a key) and
	// returns it locked. Idempotent: the first shred time stays.
	Tombstone(ctx context.Context, at time.Time) (KeyringState, error)
	// RecordShred adds destroyed versions and deleted-row counts to the tombstone.
	RecordShred(ctx context.Context, destroyed []uint32, secretsDeleted, rowsDeleted int64) error
	DeleteSecretsBatch(ctx context.Context, limit int) (int64, error)
	DeleteAppsBatch(ctx context.Context, limit int) (int64, error)
	PurgeAuditBatch(ctx context.Context, limit int) (int64, error)

	// RecordUse writes e only if the key policy still allows the use (not shredded, versions
	// not retired, current as expected) and reports whether it did. It is the cross-replica
	// check that keeps cached keys honest.
	RecordUse(ctx context.Context, e AuditEntry, check UseCheck) (bool, error)
	Audit(ctx context.Context, e AuditEntry) error
	// ListAudit returns up to limit entries older than before (uuid.Nil: the newest), newest first.
	ListAudit(ctx context.Context, before uuid.UUID, limit int) ([]AuditEntry, error)

	RegisterApp(ctx context.Context, appID uuid.UUID, at time.Time) error
	// UnregisterApp deletes the app's secrets and its registration.
	UnregisterApp(ctx context.Context, appID uuid.UUID) (secretsDeleted int64, registered bool, err error)
	AppRegistered(ctx context.Context, appID uuid.UUID) (bool, error)

	// InsertSecret stores a new secret; fault.AlreadyExists if the name is taken, fault.NotFound
	// if the app is not registered.
	InsertSecret(ctx context.Context, s StoredSecret) error
	CountSecrets(ctx context.Context, appID uuid.UUID) (int, error)
	// Secret reads one secret (lock: FOR UPDATE); ErrNoSecret if there is none.
	Secret(ctx context.Context, appID uuid.UUID, name string, lock bool) (StoredSecret, error)
	UpdateSecretValue(ctx context.Context, appID uuid.UUID, name string, ct []byte, keyVersion uint32, at time.Time) error
	// RewrapSecret replaces a secret's sealed value, keeping its rotate time.
	RewrapSecret(ctx context.Context, appID uuid.UUID, name string, ct []byte, keyVersion uint32) error
	DeleteSecret(ctx context.Context, appID uuid.UUID, name string) (bool, error)
	// ListSecrets lists an app's secrets by name; registered is false for an unknown app.
	ListSecrets(ctx context.Context, appID uuid.UUID) (secrets []Secret, registered bool, err error)
	AllSecrets(ctx context.Context) ([]Secret, error)
	// SecretsBelow returns up to limit secrets sealed under a version below version, locked.
	SecretsBelow(ctx context.Context, version uint32, limit int) ([]StoredSecret, error)
	CountSecretsBelow(ctx context.Context, version uint32) (int64, error)
}

// KeyBackup keeps the vault's own copies of the wrapped key rows (the only backup of tenant
// keys: database dumps exclude the key table), so that shredding can reach them.
type KeyBackup interface {
	Put(ctx context.Context, k WrappedKey) error
	// Versions lists the backed-up versions of a tenant.
	Versions(ctx context.Context, o owner.ID) ([]uint32, error)
	Delete(ctx context.Context, o owner.ID, versions []uint32) error
	// DeleteOwner deletes every backed-up version of the tenant and returns how many it deleted.
	DeleteOwner(ctx context.Context, o owner.ID) (int, error)
}

// Errors the store returns and faults the vault answers with. Fault messages are client-safe.
var (
	ErrNoKeyring = fault.NotFound("no keyring")
	ErrNoSecret  = fault.NotFound("secret not found")

	// ErrShredded answers every use of a tenant whose keys were destroyed.
	ErrShredded = fault.FailedPrecondition("the tenant's keys were destroyed").WithReason("KEYS_DESTROYED", nil)
	// ErrRetired answers a ciphertext under a key version below the minimum.
	ErrRetired    = fault.FailedPrecondition("the ciphertext's key version was retired").WithReason("KEY_VERSION_RETIRED", nil)
	errAppMissing = fault.NotFound("app not found")
)
