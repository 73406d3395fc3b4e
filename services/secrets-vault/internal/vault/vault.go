package vault

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
)

// Config is what a Vault is built from.
type Config struct {
	Store  Store
	KEK    kek.Provider
	Backup KeyBackup
	// CacheSize bounds how many tenants' unwrapped keys are held (0: 10000); CacheTTL how
	// long each is held (0: 5 minutes). A negative size turns the cache off.
	CacheSize int
	CacheTTL  time.Duration
	// Now is the clock (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// OnRotate is called after a key rotation commits (the rewrap job's wake-up); may be nil.
	OnRotate func()
	// Self is the vault's own workload ID, recorded in the audit entries of its own work
	// (first key creation, rewrap); "" means "secrets-vault".
	Self string
}

// Vault is the vault's domain service.
type Vault struct {
	store    Store
	kek      kek.Provider
	backup   KeyBackup
	cache    *keyCache
	now      func() time.Time
	log      *slog.Logger
	onRotate func()
	self     string
	bufs     *aadBuffers
}

// New checks cfg and returns a Vault.
func New(cfg Config) (*Vault, error) {
	if cfg.Store == nil || cfg.KEK == nil || cfg.Backup == nil {
		return nil, errors.New("vault: Store, KEK and Backup are required")
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10000
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	var cacheClock func() time.Time // nil: the real clock, read monotonically on the hot path
	if cfg.Now == nil {
		cfg.Now = time.Now
	} else {
		cacheClock = cfg.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Self == "" {
		cfg.Self = "secrets-vault"
	}
	if cfg.OnRotate == nil {
		cfg.OnRotate = func() {}
	}
	return &Vault{
		store: cfg.Store, kek: cfg.KEK, backup: cfg.Backup,
		cache: newKeyCache(cfg.CacheSize, cfg.CacheTTL, cacheClock),
		bufs:  newAADBuffers(),
		now:   cfg.Now, log: cfg.Logger, onRotate: cfg.OnRotate, self: cfg.Self,
	}, nil
}

// keys returns the tenant's cached keyset, loading it on a miss. With create, a tenant without
// a keyring gets its first data key (version 1); without, ErrNoKeyring is returned.
func (v *Vault) keys(ctx context.Context, o owner.ID, create bool) (*keyset, error) {
	if ks, ok := v.cache.get(o); ok {
		return ks, nil
	}
	return v.load(ctx, o, create)
}

// load reads and unwraps the tenant's keys (creating the first one if asked) and caches them.
func (v *Vault) load(ctx context.Context, o owner.ID, create bool) (*keyset, error) {
	gen := v.cache.generation()
	var ks *keyset
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		ks = nil
		st, err := tx.Keyring(ctx, false)
		if errors.Is(err, ErrNoKeyring) && create {
			st, err = v.createKeyring(ctx, tx, o)
		}
		if err != nil {
			return err
		}
		if st.Shredded {
			return ErrShredded
		}
		stored, err := tx.Keys(ctx, st.MinDecrypt)
		if err != nil {
			return err
		}
		ks = &keyset{current: st.Current, minDecrypt: st.MinDecrypt, aeads: make(map[uint32]cipher.AEAD, len(stored)), bufs: v.bufs}
		for _, k := range stored {
			aead, err := unwrap(ctx, v.kek, k)
			if err != nil {
				return err
			}
			ks.aeads[k.Version] = aead
		}
		if ks.aeads[st.Current] == nil {
			return fmt.Errorf("vault: current key version %d of a tenant is missing", st.Current)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.cache.put(o, ks, gen)
	return ks, nil
}

// createKeyring creates the tenant's first data key inside tx. A concurrent creator wins the
// insert race and this one reads its row; a tombstone (shredded tenant) is never replaced.
func (v *Vault) createKeyring(ctx context.Context, tx StoreTx, o owner.ID) (KeyringState, error) {
	created, err := tx.CreateKeyring(ctx)
	if err != nil {
		return KeyringState{}, err
	}
	if created {
		if err := v.addKeyVersion(ctx, tx, o, 1); err != nil {
			return KeyringState{}, err
		}
		if err := tx.Audit(ctx, v.entry(Actor{Workload: v.self, Purpose: PurposeSecretManagement}, ActionKeyCreate, "key v1", 1)); err != nil {
			return KeyringState{}, err
		}
	}
	return tx.Keyring(ctx, false)
}

// addKeyVersion creates, stores and backs up data key version ver. The backup is written
// before the transaction commits: a key version that exists has a backup (a failed backup
// rolls the version back).
func (v *Vault) addKeyVersion(ctx context.Context, tx StoreTx, o owner.ID, ver uint32) error {
	wk, _, err := newDataKey(ctx, v.kek, o, ver, v.now())
	if err != nil {
		return err
	}
	if err := tx.InsertKey(ctx, wk); err != nil {
		return err
	}
	if err := v.backup.Put(ctx, wk); err != nil {
		return fmt.Errorf("vault: keyring backup: %w", err)
	}
	return nil
}

func (v *Vault) entry(a Actor, action, subject string, items int) AuditEntry {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	return AuditEntry{ID: id, Time: v.now(), Workload: a.Workload, Action: action, Subject: subject, Purpose: a.Purpose, Items: items}
}

// recordUse writes the audit entry of a key use, checked against the stored policy in the same
// transaction. When the policy refuses, the cached keys are dropped and the precise fault is
// returned; errStaleCurrent means another replica rotated and the caller should seal again.
func (v *Vault) recordUse(ctx context.Context, tx StoreTx, o owner.ID, e AuditEntry, check UseCheck) error {
	check.AsyncCommit = asyncAudit(e.Action, e.Purpose)
	ok, err := tx.RecordUse(ctx, e, check)
	if err != nil {
		return fmt.Errorf("vault: audit: %w", err)
	}
	if ok {
		return nil
	}
	v.cache.drop(o)
	st, err := tx.Keyring(ctx, false)
	switch {
	case errors.Is(err, ErrNoKeyring):
		return ErrShredded // the keyring vanished under a cached key: treat as destroyed
	case err != nil:
		return err
	case st.Shredded:
		return ErrShredded
	case check.OldestVersion != 0 && check.OldestVersion < st.MinDecrypt:
		return ErrRetired
	}
	return errStaleCurrent
}

// asyncAudit reports whether the audit entry of a use may commit without waiting for its WAL
// flush (synchronous_commit = off for that transaction only). A durable commit costs a flush
// per call (0.6-3 ms on the development VM, most of a Decrypt), so the most frequent, least
// sensitive reads are relaxed: small fields decrypted for APP_CONTENT (app names and
// descriptions of every page, collaborator emails, reference file names) and content opened to
// serve an app (SERVE, Decrypt or DecryptDataKey). Everything else waits for the flush: secret
// resolution (audited as secret.resolve, whatever its purpose), the prompt purposes, export,
// rewrap, every encryption and key issue, file and reference contents opened for
// APP_CONTENT (uploads are promised an audited read), and every key-management action.
//
// The trade-off, exactly: if Postgres (or its host) crashes, relaxed entries committed in the
// last moments before the crash may be lost although their plaintext was returned: at most
// 3 x wal_writer_delay (600 ms at the default 200 ms; usually one wal_writer_delay), and less
// whenever a later durable commit flushed the WAL past them (the WAL is flushed in order).
// Nothing else changes: the entry is inserted in the same transaction as before, so an insert
// that fails still fails the call, and the key policy (shred, retirement) is still checked in
// that transaction before anything is returned. A crash of the vault process alone loses
// nothing: the commit was done by Postgres.
func asyncAudit(action string, p Purpose) bool {
	switch action {
	case ActionDecrypt:
		return p == PurposeAppContent || p == PurposeServe
	case ActionDecryptDataKey:
		return p == PurposeServe
	}
	return false
}

// errStaleCurrent is internal: the cached current version is no longer current.
var errStaleCurrent = errors.New("vault: cached key version is no longer current")

// withFreshKeys runs fn with the tenant's keys, once more with freshly loaded keys if fn
// reports that the cached current version went stale (a rotation by another replica).
func (v *Vault) withFreshKeys(ctx context.Context, o owner.ID, create bool, fn func(ks *keyset) error) error {
	ks, err := v.keys(ctx, o, create)
	if err != nil {
		return err
	}
	err = fn(ks)
	if !errors.Is(err, errStaleCurrent) {
		return err
	}
	if ks, err = v.load(ctx, o, create); err != nil {
		return err
	}
	if err = fn(ks); errors.Is(err, errStaleCurrent) {
		return fmt.Errorf("vault: key rotated twice during one call: %w", err)
	}
	return err
}

// versionsSubject renders the key versions a call used, for the audit subject.
func versionsSubject(versions []uint32) string {
	slices.Sort(versions)
	versions = slices.Compact(versions)
	parts := make([]string, len(versions))
	for i, ver := range versions {
		parts[i] = "v" + strconv.FormatUint(uint64(ver), 10)
	}
	return "key " + strings.Join(parts, ",")
}

// DropCachedKeys forgets the tenant's unwrapped keys in this process.
func (v *Vault) DropCachedKeys(o owner.ID) { v.cache.drop(o) }
