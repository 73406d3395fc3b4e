package apps

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/owner"
)

var (
	errMissingDependency = errors.New("apps: a dependency is missing")
	errBadRegion         = errors.New("apps: unknown region")
)

// Purpose is why content is encrypted or decrypted; the vault audits it.
type Purpose int

// The purposes apps declares.
const (
	PurposeAppContent Purpose = iota + 1
	PurposePromptOwnerView
	PurposePromptCollaboratorView
	PurposePromptBuild
	PurposeExport
	PurposeServe
)

// Binding is the associated data of a ciphertext: the object and field it belongs to (the
// owner is the one the call acts for).
type Binding struct {
	Object string
	Field  string
}

// CryptoItem is one piece of content with its binding.
type CryptoItem struct {
	Binding Binding
	Data    []byte
}

// SealedObject is large content sealed by envelope encryption, with its data key as the vault
// wrapped it (store both: the object in object storage, the wrapped key in its row).
type SealedObject struct {
	Data       []byte
	WrappedKey []byte
}

// ObjectItem is a sealed object to open: its binding and its wrapped data key.
type ObjectItem struct {
	Binding    Binding
	WrappedKey []byte
}

// Crypto encrypts and decrypts tenant content under the owner's key (secrets-vault). Each
// call is one batch however many items it carries (the adapter splits only what exceeds the
// vault's per-call limits).
//
// Small fields (names, descriptions, prompts, emails, reference metadata) travel to the vault
// whole (Encrypt, Decrypt). Large content (version files, reference contents) is sealed by
// envelope encryption (SealObjects, OpenObjects): a fresh data key per object from the vault,
// the bytes sealed in this process, the key stored only as the vault wrapped it under the
// owner's key. The clear keys never leave the adapter's call.
type Crypto interface {
	Encrypt(ctx context.Context, o owner.ID, p Purpose, items []CryptoItem) (ciphertexts [][]byte, keyVersion uint32, err error)
	Decrypt(ctx context.Context, o owner.ID, p Purpose, items []CryptoItem) ([][]byte, error)
	// SealObjects seals each item under its own fresh data key. keyVersion is the owner's
	// key version the data keys were wrapped under (the oldest, if calls straddle a rotation).
	SealObjects(ctx context.Context, o owner.ID, p Purpose, items []CryptoItem) (sealed []SealedObject, keyVersion uint32, err error)
	// OpenObjects opens what SealObjects sealed. fetch reads the sealed bytes of item i; the
	// vault call that unwraps the keys runs while the objects are read.
	OpenObjects(ctx context.Context, o owner.ID, p Purpose, items []ObjectItem, fetch func(ctx context.Context, i int) ([]byte, error)) ([][]byte, error)
}

// SecretSpec is a secret to store for an app (a key pasted into a prompt).
type SecretSpec struct {
	AppID    uuid.UUID
	Name     string
	Value    []byte
	Upstream string
	// Header and Prefix, or Query, say how the proxy injects the value.
	Header, Prefix, Query string
}

// Secrets stores app secrets (secrets-vault SecretService).
type Secrets interface {
	PutSecret(ctx context.Context, o owner.ID, s SecretSpec) error
}

// Registry tells the vault which apps exist.
type Registry interface {
	RegisterApp(ctx context.Context, o owner.ID, appID uuid.UUID) error
	UnregisterApp(ctx context.Context, o owner.ID, appID uuid.UUID) error
}

// Plan is a tenant's plan.
type Plan int

// The plans (values match forge.tenant.v1.Plan).
const (
	PlanUnspecified Plan = iota
	PlanFree
	PlanPro
	PlanStudio
)

// Tenants answers what apps must ask the tenant service.
type Tenants interface {
	// Plan returns the plan of owner o.
	Plan(ctx context.Context, o owner.ID) (Plan, error)
	// ResolveEmail finds the active tenant that signed in with email (fault NotFound if none).
	ResolveEmail(ctx context.Context, email string) (owner.ID, error)
}

// Blobs is object storage. Keys start with the owner ID so a purge can list everything of
// one owner.
type Blobs interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	// List returns up to limit keys under prefix, in key order.
	List(ctx context.Context, prefix string, limit int) ([]string, error)
}

// AppRecord is an app row as stored: ciphertexts, identifiers, times.
type AppRecord struct {
	ID             uuid.UUID
	Owner          owner.ID
	Name           []byte
	Description    []byte // nil when empty
	KeyVersion     uint32
	Visibility     Visibility
	CurrentVersion int32
	Created        time.Time
	Updated        time.Time
	Published      bool
	// PromptSeq is the sequence number of the last prompt entry.
	PromptSeq int64
}

// PromptRecord is a prompt entry as stored.
type PromptRecord struct {
	ID         uuid.UUID
	AppID      uuid.UUID
	Seq        int64
	Kind       PromptKind
	Author     string
	Text       []byte
	KeyVersion uint32
	Created    time.Time
}

// PromptKind says who wrote a prompt entry (values match forge.apps.v1.Prompt.Kind).
type PromptKind int

// The kinds.
const (
	KindPrompt PromptKind = iota + 1
	KindResponse
)

// ReadPurpose is why prompts were read (values match forge.apps.v1.PromptReadPurpose).
type ReadPurpose int

// The purposes of a prompt read.
const (
	ReadOwnerView ReadPurpose = iota + 1
	ReadCollaboratorView
	ReadBuild
	ReadExport
)

// PromptRead is one audited read of prompt text.
type PromptRead struct {
	ID          uuid.UUID
	AppID       uuid.UUID
	Purpose     ReadPurpose
	Reader      owner.ID // zero for the builder and export
	Workload    string
	PromptCount int
	Time        time.Time
}

// ReferenceRecord is a reference row as stored.
type ReferenceRecord struct {
	ID          uuid.UUID
	AppID       uuid.UUID
	Meta        []byte // ciphertext of the filename and sha256
	ContentType string
	Size        int64
	ObjectKey   string
	// WrappedKey is the content's data key, wrapped by the vault under KeyVersion.
	WrappedKey []byte
	KeyVersion uint32
	Created    time.Time
}

// VersionRecord is a version row.
type VersionRecord struct {
	AppID   uuid.UUID
	Version int32
	Author  string
	Created time.Time
	Files   []FileRecord
}

// FileRecord is a version file row (content in object storage).
type FileRecord struct {
	Path        string
	ContentType string
	Size        int64
	ObjectKey   string
	// WrappedKey is the content's data key, wrapped by the vault under KeyVersion.
	WrappedKey []byte
	KeyVersion uint32
}

// ShareLinkRecord is a share link row.
type ShareLinkRecord struct {
	ID        uuid.UUID
	AppID     uuid.UUID
	TokenHash []byte
	Created   time.Time
	Expires   time.Time
}

// CollaboratorRecord is a collaborator row.
type CollaboratorRecord struct {
	ID         uuid.UUID
	AppID      uuid.UUID
	Member     owner.ID
	Email      []byte // ciphertext
	KeyVersion uint32
	Role       Role
	Created    time.Time
}

// ListingRecord is a Discover listing: public fields, plaintext on purpose.
type ListingRecord struct {
	ID          uuid.UUID
	Owner       owner.ID
	AppID       uuid.UUID
	Name        string
	Description string
	Version     int32
	Published   time.Time
	Files       []ListingFile
}

// ListingFile is one file of a listing (plaintext object).
type ListingFile struct {
	Path        string
	ContentType string
	Size        int64
	ObjectKey   string
}

// SharedApp is an app another tenant shared with the caller.
type SharedApp struct {
	Owner        owner.ID
	AppID        uuid.UUID
	Role         Role
	CollabID     uuid.UUID
	CollabCreate time.Time
}

// Cursor is a keyset pagination position: (time, id) or a sequence number.
type Cursor struct {
	Time time.Time
	ID   uuid.UUID
	Seq  int64
}

// PurgeCount is what one purge batch removed.
type PurgeCount struct {
	Rows    int64
	Objects int64
	Done    bool
}

// Store is the apps schema (Postgres).
type Store interface {
	// Tx runs fn in an owner transaction of o.
	Tx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx StoreTx) error) error
	// Resolve finds the caller's role on an app: owner (RLS-scoped read) or collaborator
	// (the reviewed collaborator_access path), fault NotFound otherwise; and whether the
	// caller itself is disabled (deletion pending), whatever the app.
	Resolve(ctx context.Context, caller owner.ID, appID uuid.UUID) (o owner.ID, r Role, callerDisabled bool, err error)
	// SharedWithMe pages through the apps other tenants shared with viewer.
	SharedWithMe(ctx context.Context, viewer owner.ID, after *Cursor, limit int) ([]SharedApp, error)
	// AppOwner finds the owner of an app whose owner is not disabled (sandbox origin).
	AppOwner(ctx context.Context, appID uuid.UUID) (owner.ID, error)
	// ShareLinkOwner finds the owner and expiry of a live share link of an app.
	ShareLinkOwner(ctx context.Context, appID uuid.UUID, tokenHash []byte) (owner.ID, time.Time, error)
	// Listings pages through Discover, newest first (no owner: the public read policy).
	Listings(ctx context.Context, after *Cursor, limit int) ([]ListingRecord, error)
	// Listing reads one listing with its files.
	Listing(ctx context.Context, id uuid.UUID) (ListingRecord, error)
	// PurgePromptReads deletes up to limit audit rows of a disabled owner (the reviewed path:
	// the audit is append-only otherwise).
	PurgePromptReads(ctx context.Context, o owner.ID, limit int) (int64, error)
}

// StoreTx is the work of one owner transaction. Every method filters by the transaction's
// owner; RLS enforces the same underneath.
type StoreTx interface {
	Owner() owner.ID

	InsertApp(ctx context.Context, a AppRecord) error
	// App reads one app; lock takes a row lock for the rest of the transaction.
	App(ctx context.Context, id uuid.UUID, lock bool) (AppRecord, error)
	Apps(ctx context.Context, after *Cursor, limit int) ([]AppRecord, error)
	AppsByID(ctx context.Context, ids []uuid.UUID) ([]AppRecord, error)
	UpdateApp(ctx context.Context, a AppRecord) error
	DeleteApp(ctx context.Context, id uuid.UUID) error
	// NextPromptSeq increments and returns the app's prompt sequence (locking the app row).
	NextPromptSeq(ctx context.Context, appID uuid.UUID) (int64, error)

	InsertPrompt(ctx context.Context, p PromptRecord) error
	Prompts(ctx context.Context, appID uuid.UUID, afterSeq int64, limit int) ([]PromptRecord, error)
	// AllPrompts reads every prompt of the owner (export), in app and sequence order.
	AllPrompts(ctx context.Context, appID uuid.UUID) ([]PromptRecord, error)
	InsertPromptRead(ctx context.Context, r PromptRead) error
	PromptReads(ctx context.Context, appID uuid.UUID, after *Cursor, limit int) ([]PromptRead, error)

	InsertReference(ctx context.Context, r ReferenceRecord) error
	References(ctx context.Context, appID uuid.UUID) ([]ReferenceRecord, error)
	Reference(ctx context.Context, appID, id uuid.UUID) (ReferenceRecord, error)
	DeleteReference(ctx context.Context, appID, id uuid.UUID) error
	CountReferences(ctx context.Context, appID uuid.UUID) (int, error)

	InsertVersion(ctx context.Context, v VersionRecord) error
	Versions(ctx context.Context, appID uuid.UUID) ([]VersionRecord, error)
	VersionFile(ctx context.Context, appID uuid.UUID, version int32, path string) (FileRecord, error)
	VersionFiles(ctx context.Context, appID uuid.UUID, version int32) ([]FileRecord, error)

	InsertShareLink(ctx context.Context, l ShareLinkRecord) error
	ShareLinks(ctx context.Context, appID uuid.UUID, now time.Time) ([]ShareLinkRecord, error)
	RevokeShareLink(ctx context.Context, appID, id uuid.UUID, now time.Time) error
	HasLiveShareLink(ctx context.Context, appID uuid.UUID, now time.Time) (bool, error)

	InsertCollaborator(ctx context.Context, c CollaboratorRecord) error
	Collaborators(ctx context.Context, appID uuid.UUID) ([]CollaboratorRecord, error)
	DeleteCollaborator(ctx context.Context, appID, id uuid.UUID) error

	// ListingID returns the ID of the app's listing, if it has one.
	ListingID(ctx context.Context, appID uuid.UUID) (uuid.UUID, bool, error)
	// UpsertListing replaces the app's listing (and its files); it returns the previous
	// listing's object keys, to delete after commit.
	UpsertListing(ctx context.Context, l ListingRecord) (oldKeys []string, err error)
	// DeleteListing removes the app's listing and returns its object keys (nil, false when
	// there was none).
	DeleteListing(ctx context.Context, appID uuid.UUID) ([]string, bool, error)

	// Holds reports whether any row of the owner is left (the outbox aside).
	Holds(ctx context.Context) (bool, error)
	// Disabled reports whether the owner is disabled (deletion pending).
	Disabled(ctx context.Context) (bool, error)
	// Disable marks the owner disabled, deletes every listing and share link and makes every
	// app private. It returns the counts and the listing object keys.
	Disable(ctx context.Context, now time.Time) (listings, links int, keys []string, err error)
	// Restore clears the disabled mark.
	Restore(ctx context.Context) error
	// PurgeRows deletes up to limit rows of the owner's tables (prompt reads excepted), the
	// owner's marker last; done reports that nothing is left.
	PurgeRows(ctx context.Context, limit int) (rows int64, done bool, err error)

	// Events, written to the outbox in this transaction.
	AppCreated(ctx context.Context, appID uuid.UUID) error
	AppDeleted(ctx context.Context, appID uuid.UUID) error
	AccessChanged(ctx context.Context, appID uuid.UUID, reason AccessReason) error
	PurgeCompleted(ctx context.Context, deletionID uuid.UUID, rows, objects int64) error
}
