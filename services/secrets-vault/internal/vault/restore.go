package vault

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
)

// Restoring tenant keys after a database restore.
//
// Database dumps leave the wrapped tenant keys out (tenant_keys), so that a shred, which
// deletes the tenant's keyring backups, reaches every copy. A vault database restored from a
// dump therefore has its tenants' keyrings, secrets and audit trail but no keys: RestoreKeyrings
// loads them back from the keyring backups. It invents nothing: a key that has no backup stays
// missing (it is reported, and the keyring is neither changed nor tombstoned, so a wrong bucket
// cannot shred anyone), a backup that does not prove itself (its name and content disagree, it
// does not unwrap under the root key for its owner and version, or another key is stored under
// its version) is refused and reported, and a tombstone stays a tombstone.

// KeyringBackups reads the keyring backups back (package keybackup).
type KeyringBackups interface {
	// Owners lists every owner with at least one backed-up version.
	Owners(ctx context.Context) ([]owner.ID, error)
	// Versions lists an owner's backed-up versions.
	Versions(ctx context.Context, o owner.ID) ([]uint32, error)
	// Get reads one version; it fails when the object's content names another owner or version.
	Get(ctx context.Context, o owner.ID, v uint32) (WrappedKey, error)
}

// RestoreStore is the restored database, reached as the migration role (package postgres).
type RestoreStore interface {
	// RestoreTx runs fn in one transaction acting for owner o.
	RestoreTx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx RestoreTx) error) error
	// Keyrings lists every keyring that is not a tombstone, with the key versions stored for
	// it. complete is false, and nothing is listed, when the role cannot read every tenant's
	// rows (it does not bypass row-level security).
	Keyrings(ctx context.Context) (keyrings []StoredKeyring, complete bool, err error)
}

// RestoreTx is one owner's restore transaction.
type RestoreTx interface {
	// Keyring reads the owner's key policy, locked (ErrNoKeyring when there is none).
	Keyring(ctx context.Context) (KeyringState, error)
	// CreateKeyring inserts the owner's key policy row.
	CreateKeyring(ctx context.Context, current, minDecrypt uint32) error
	// RaiseCurrent sets the current version to current if it is lower; it never lowers it.
	RaiseCurrent(ctx context.Context, current uint32) error
	// RestoreKey inserts k unless its version is already stored, and says which happened.
	RestoreKey(ctx context.Context, k WrappedKey) (KeyOutcome, error)
}

// KeyOutcome is what RestoreKey found.
type KeyOutcome int

// The outcomes of RestoreKey.
const (
	// KeyInserted: the version was missing and is now stored.
	KeyInserted KeyOutcome = iota + 1
	// KeyPresent: the same wrapped key (root key ID and bytes) was already stored.
	KeyPresent
	// KeyConflict: another wrapped key is stored under this version; it was kept.
	KeyConflict
)

// StoredKeyring is a keyring of the database and the key versions stored for it.
type StoredKeyring struct {
	Owner      owner.ID
	Current    uint32
	MinDecrypt uint32
	Versions   []uint32
}

// RestoreConfig is what RestoreKeyrings reads and writes.
type RestoreConfig struct {
	Store   RestoreStore
	KEK     kek.Provider
	Backups KeyringBackups
}

// RestoreReport is what a restore did and found. It holds owner IDs and versions only, never
// key material.
type RestoreReport struct {
	// Owners is how many owners the keyring backups hold.
	Owners int
	// Restored counts the versions inserted; Present those already stored, identical.
	Restored, Present int
	// KeyringsCreated counts the keyrings created for tenants missing from the dump;
	// KeyringsAdvanced those whose current version was raised to a newer backed-up one.
	KeyringsCreated, KeyringsAdvanced int
	// Retired counts backed-up versions below their keyring's minimum decryption version
	// (left by an interrupted retirement): not restored.
	Retired int
	// Tombstones are shredded tenants whose backups remain: nothing restored for them.
	Tombstones []owner.ID
	// Missing are the keyrings (not shredded) with versions that have no key, even after the
	// restore. MissingUnchecked says this could not be checked (see RestoreStore.Keyrings).
	Missing          []MissingKeys
	MissingUnchecked bool
	// Refused are the backups that did not prove themselves; none of them was written.
	Refused []RefusedKey
}

// MissingKeys is a keyring with versions that have no key.
type MissingKeys struct {
	Owner owner.ID
	// Count is how many versions have no key; Versions lists the first of them (at most 16).
	Count    int
	Versions []uint32
}

// RefusedKey is a backup that was not restored, and why.
type RefusedKey struct {
	Owner owner.ID
	// Version is 0 when the owner's versions could not be listed.
	Version uint32
	Reason  string
}

// Changed reports whether the restore wrote anything.
func (r RestoreReport) Changed() bool {
	return r.Restored+r.KeyringsCreated+r.KeyringsAdvanced > 0
}

// Err is the restore's verdict: refused backups always fail it (someone must look at them);
// keys missing, or not checked, fail it only when strict.
func (r RestoreReport) Err(strict bool) error {
	var problems []string
	if n := len(r.Refused); n > 0 {
		problems = append(problems, fmt.Sprintf("%d key backups refused", n))
	}
	if strict && len(r.Missing) > 0 {
		problems = append(problems, fmt.Sprintf("%d keyrings with keys missing (-strict)", len(r.Missing)))
	}
	if strict && r.MissingUnchecked {
		problems = append(problems, "missing keys not checked (-strict)")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("restore-keyring: %s", strings.Join(problems, "; "))
}

// RestoreKeyrings loads every backed-up key version that proves itself into the database, one
// transaction per owner (its keyring row first, then its keys), and then looks for keyrings
// whose keys are still missing. It is idempotent: a repeated run finds every version present
// and changes nothing. An error means it stopped (the database or the bucket failed); the
// owners done before are committed and a repeated run goes on from there.
func RestoreKeyrings(ctx context.Context, cfg RestoreConfig) (RestoreReport, error) {
	var rep RestoreReport
	if cfg.Store == nil || cfg.KEK == nil || cfg.Backups == nil {
		return rep, errors.New("vault: restore: Store, KEK and Backups are required")
	}
	owners, err := cfg.Backups.Owners(ctx)
	if err != nil {
		return rep, fmt.Errorf("vault: restore: %w", err)
	}
	rep.Owners = len(owners)
	for _, o := range owners {
		if err := restoreOwner(ctx, cfg, o, &rep); err != nil {
			return rep, fmt.Errorf("vault: restore owner %s: %w", o, err)
		}
	}
	keyrings, complete, err := cfg.Store.Keyrings(ctx)
	if err != nil {
		return rep, fmt.Errorf("vault: restore: check keyrings: %w", err)
	}
	rep.MissingUnchecked = !complete
	for _, k := range keyrings {
		if m := missingKeys(k); m.Count > 0 {
			rep.Missing = append(rep.Missing, m)
		}
	}
	return rep, nil
}

// maxListedMissing bounds the versions a MissingKeys lists (a corrupt current_version must
// not make the restore enumerate billions of them).
const maxListedMissing = 16

// missingKeys finds the versions of a keyring (from its minimum decryption version to its
// current one) that have no stored key.
func missingKeys(k StoredKeyring) MissingKeys {
	m := MissingKeys{Owner: k.Owner}
	if k.MinDecrypt == 0 || k.Current < k.MinDecrypt {
		return m
	}
	stored := make(map[uint32]bool, len(k.Versions))
	for _, v := range k.Versions {
		if v >= k.MinDecrypt && v <= k.Current {
			stored[v] = true
		}
	}
	m.Count = int(k.Current-k.MinDecrypt) + 1 - len(stored)
	for v := k.MinDecrypt; len(m.Versions) < min(m.Count, maxListedMissing); v++ {
		if !stored[v] {
			m.Versions = append(m.Versions, v)
		}
	}
	return m
}

// restoreOwner restores one owner's backed-up versions. The backups are read and checked before
// the transaction opens, so no bucket request runs while the keyring row is locked.
func restoreOwner(ctx context.Context, cfg RestoreConfig, o owner.ID, rep *RestoreReport) error {
	versions, err := cfg.Backups.Versions(ctx, o)
	if err != nil {
		rep.Refused = append(rep.Refused, RefusedKey{Owner: o, Reason: "its backups could not be listed: " + err.Error()})
		return nil
	}
	slices.Sort(versions)
	var proven []WrappedKey
	for _, v := range versions {
		if v == 0 || v > math.MaxInt32 {
			// Not a version the vault ever makes (versions start at 1 and are stored as integer).
			rep.Refused = append(rep.Refused, RefusedKey{Owner: o, Version: v, Reason: "not a key version the vault makes (1 to 2^31-1)"})
			continue
		}
		k, err := cfg.Backups.Get(ctx, o, v)
		if err != nil {
			rep.Refused = append(rep.Refused, RefusedKey{Owner: o, Version: v, Reason: err.Error()})
			continue
		}
		if reason := checkUnwraps(ctx, cfg.KEK, k); reason != "" {
			rep.Refused = append(rep.Refused, RefusedKey{Owner: o, Version: v, Reason: reason})
			continue
		}
		proven = append(proven, k)
	}

	// What this owner's transaction did, merged into the report once it has committed.
	var (
		res     RestoreReport
		created bool
	)
	err = cfg.Store.RestoreTx(ctx, o, func(ctx context.Context, tx RestoreTx) error {
		res, created = RestoreReport{}, false
		st, err := tx.Keyring(ctx)
		switch {
		case errors.Is(err, ErrNoKeyring):
			// A tenant created after the dump: its keyring spans what its backups hold.
			if len(proven) == 0 {
				return nil
			}
			st = KeyringState{Current: proven[len(proven)-1].Version, MinDecrypt: proven[0].Version}
			if err := tx.CreateKeyring(ctx, st.Current, st.MinDecrypt); err != nil {
				return err
			}
			created = true
			res.KeyringsCreated = 1
		case err != nil:
			return err
		case st.Shredded:
			// The tombstone is final (and the database refuses keys for it anyway).
			res.Tombstones = []owner.ID{o}
			return nil
		}
		var top uint32
		for _, k := range proven {
			if k.Version < st.MinDecrypt {
				res.Retired++
				continue
			}
			outcome, err := tx.RestoreKey(ctx, k)
			if err != nil {
				return err
			}
			switch outcome {
			case KeyInserted:
				res.Restored++
			case KeyPresent:
				res.Present++
			default:
				res.Refused = append(res.Refused, RefusedKey{Owner: o, Version: k.Version,
					Reason: "another wrapped key is stored under this version (kept)"})
				continue
			}
			top = max(top, k.Version)
		}
		// Rotated after the dump: the newest stored version encrypts again.
		if !created && top > st.Current {
			if err := tx.RaiseCurrent(ctx, top); err != nil {
				return err
			}
			res.KeyringsAdvanced = 1
		}
		return nil
	})
	if err != nil {
		return err
	}
	rep.Restored += res.Restored
	rep.Present += res.Present
	rep.KeyringsCreated += res.KeyringsCreated
	rep.KeyringsAdvanced += res.KeyringsAdvanced
	rep.Retired += res.Retired
	rep.Tombstones = append(rep.Tombstones, res.Tombstones...)
	rep.Refused = append(rep.Refused, res.Refused...)
	return nil
}

// checkUnwraps proves that a backed-up key opens under the root key for its owner and version,
// and drops the unwrapped key at once. It returns why not, or "".
func checkUnwraps(ctx context.Context, p kek.Provider, k WrappedKey) string {
	if k.KEKID != p.KeyID() {
		return fmt.Sprintf("wrapped under root key %s, the provider holds %s", k.KEKID, p.KeyID())
	}
	key, err := p.Unwrap(ctx, k.Wrapped, wrapAAD(k.Owner, k.Version))
	n := len(key)
	clear(key)
	if err != nil || n != kek.KeySize {
		return "does not unwrap under the root key for its owner and version"
	}
	return ""
}

// WriteSummary prints the report for an operator: counts first, then one line per owner that
// needs a look. It prints owner IDs and versions, never key material.
func (r RestoreReport) WriteSummary(w io.Writer) error {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("owners in the keyring backups: %d", r.Owners)
	line("key versions restored: %d", r.Restored)
	line("key versions already present: %d", r.Present)
	line("keyrings created: %d", r.KeyringsCreated)
	line("keyrings advanced to a newer version: %d", r.KeyringsAdvanced)
	line("retired versions skipped: %d", r.Retired)
	line("tombstones skipped (shredded tenants): %d", len(r.Tombstones))
	if r.MissingUnchecked {
		line("keyrings with keys missing: not checked (the database role cannot read every tenant's keyring: it needs BYPASSRLS)")
	} else {
		line("keyrings with keys missing: %d", len(r.Missing))
	}
	line("key backups refused: %d", len(r.Refused))
	for _, o := range sortedOwners(r.Tombstones) {
		line("tombstone %s: shredded, its backups remain; nothing restored (ShredTenant, which is idempotent, deletes them)", o)
	}
	missing := slices.SortedFunc(slices.Values(r.Missing), func(a, b MissingKeys) int { return cmpOwner(a.Owner, b.Owner) })
	for _, m := range missing {
		more := ""
		if m.Count > len(m.Versions) {
			more = fmt.Sprintf(" and %d more", m.Count-len(m.Versions))
		}
		line("keys missing %s (%s%s): shredded after the dump? data-lifecycle replay-ledger re-runs the purge",
			m.Owner, versionsSubject(slices.Clone(m.Versions)), more)
	}
	refused := slices.SortedFunc(slices.Values(r.Refused), func(a, b RefusedKey) int {
		return cmp.Or(cmpOwner(a.Owner, b.Owner), cmp.Compare(a.Version, b.Version))
	})
	for _, f := range refused {
		if f.Version == 0 {
			line("refused %s: %s", f.Owner, f.Reason)
		} else {
			line("refused %s v%d: %s", f.Owner, f.Version, f.Reason)
		}
	}
	if r.Owners == 0 {
		line("the keyring backups hold no owner: is FORGE_KEYRING_BACKUP_URL the region's keyring bucket?")
	}
	if r.Changed() {
		line("done")
	} else {
		line("nothing changed")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cmpOwner(a, b owner.ID) int { return strings.Compare(a.String(), b.String()) }

func sortedOwners(ids []owner.ID) []owner.ID {
	return slices.SortedFunc(slices.Values(ids), cmpOwner)
}
