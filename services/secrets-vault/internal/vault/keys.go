package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// RotateKey adds a new data key version that encrypts from then on (creating the first key
// if the owner has none). Older versions still decrypt until retired; the rewrap job moves the
// vault's own secrets to the new version.
func (v *Vault) RotateKey(ctx context.Context, o owner.ID, a Actor) (uint32, error) {
	var ver uint32
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		st, err := tx.Keyring(ctx, true)
		if errors.Is(err, ErrNoKeyring) {
			st, err = v.createKeyring(ctx, tx, o)
			if err != nil {
				return err
			}
			ver = st.Current
			return nil
		}
		if err != nil {
			return err
		}
		if st.Shredded {
			return ErrShredded
		}
		ver = st.Current + 1
		if err := v.addKeyVersion(ctx, tx, o, ver); err != nil {
			return err
		}
		if err := tx.SetKeyring(ctx, ver, st.MinDecrypt); err != nil {
			return err
		}
		return tx.Audit(ctx, v.entry(a, ActionKeyRotate, versionsSubject([]uint32{ver}), 1))
	})
	v.cache.drop(o)
	if err != nil {
		return 0, err
	}
	v.onRotate()
	return ver, nil
}

// RetireKeyVersions raises the minimum decryption version to minVersion and destroys the key
// versions below it, in the live table and in the keyring backups: every ciphertext under them
// becomes unreadable. It is refused while the vault's own secrets still use such a version.
func (v *Vault) RetireKeyVersions(ctx context.Context, o owner.ID, a Actor, minVersion uint32) (KeyringState, error) {
	var (
		st        KeyringState
		destroyed []uint32
	)
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		var err error
		st, err = tx.Keyring(ctx, true)
		switch {
		case errors.Is(err, ErrNoKeyring):
			return fault.FailedPrecondition("there is no key to retire yet")
		case err != nil:
			return err
		case st.Shredded:
			return ErrShredded
		case minVersion > st.Current:
			return fault.InvalidField("min_decrypt_version", fmt.Sprintf("at most the current version (%d)", st.Current))
		case minVersion <= st.MinDecrypt:
			return nil // already retired: idempotent
		}
		stale, err := tx.CountSecretsBelow(ctx, minVersion)
		if err != nil {
			return err
		}
		if stale > 0 {
			return fault.FailedPrecondition("%d secrets still use an older key version; the background rewrap moves them, retry later", stale)
		}
		if destroyed, err = tx.DeleteKeysBelow(ctx, minVersion); err != nil {
			return err
		}
		if err := tx.SetKeyring(ctx, st.Current, minVersion); err != nil {
			return err
		}
		st.MinDecrypt = minVersion
		return tx.Audit(ctx, v.entry(a, ActionKeyRetire, fmt.Sprintf("key versions below v%d", minVersion), len(destroyed)))
	})
	v.cache.drop(o)
	if err != nil {
		return KeyringState{}, err
	}
	if len(destroyed) > 0 {
		// The live rows are gone; the backups follow. If this fails the versions are already
		// unusable (the policy refuses them everywhere) and a repeated call deletes the rest.
		if err := v.backup.Delete(ctx, o, destroyed); err != nil {
			return KeyringState{}, fmt.Errorf("vault: delete retired key backups: %w", err)
		}
	} else if err := v.deleteOrphanBackups(ctx, o, st.MinDecrypt); err != nil {
		return KeyringState{}, err
	}
	return st, nil
}

// deleteOrphanBackups removes backups of versions below minVersion left by an interrupted
// retirement.
func (v *Vault) deleteOrphanBackups(ctx context.Context, o owner.ID, minVersion uint32) error {
	versions, err := v.backup.Versions(ctx, o)
	if err != nil {
		return fmt.Errorf("vault: list key backups: %w", err)
	}
	var old []uint32
	for _, ver := range versions {
		if ver < minVersion {
			old = append(old, ver)
		}
	}
	if len(old) == 0 {
		return nil
	}
	if err := v.backup.Delete(ctx, o, old); err != nil {
		return fmt.Errorf("vault: delete retired key backups: %w", err)
	}
	return nil
}

// KeyringState returns the owner's key policy (ErrNoKeyring if the owner never had a key).
func (v *Vault) KeyringState(ctx context.Context, o owner.ID) (KeyringState, error) {
	var st KeyringState
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		var err error
		st, err = tx.Keyring(ctx, false)
		return err
	})
	return st, err
}

// ListAudit pages through the owner's audit log, newest first.
func (v *Vault) ListAudit(ctx context.Context, o owner.ID, before uuid.UUID, limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		var err error
		out, err = tx.ListAudit(ctx, before, limit)
		return err
	})
	return out, err
}
