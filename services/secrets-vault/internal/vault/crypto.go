package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Item is one piece of content to seal or open, with its binding.
type Item struct {
	Binding Binding
	Data    []byte
}

// notOpen is the one answer for a ciphertext that does not open: another owner, object or
// field, another tenant's key version, tampering. It names the item, never why.
func notOpen(i int) error {
	return fault.InvalidField(fmt.Sprintf("items[%d].ciphertext", i), "does not open for this owner, object and field")
}

func validateBindings(items []Item) error {
	for i, it := range items {
		if err := it.Binding.ValidateExternal(); err != nil {
			return fault.InvalidField(fmt.Sprintf("items[%d].binding", i), err.Error())
		}
	}
	return nil
}

// Encrypt seals every item under the owner's current key version (creating the owner's first
// key on first use) and records the use. It returns the ciphertexts and the version.
func (v *Vault) Encrypt(ctx context.Context, o owner.ID, a Actor, items []Item) ([][]byte, uint32, error) {
	return v.encryptAs(ctx, o, a, ActionEncrypt, items)
}

// encryptAs is Encrypt, audited as action.
func (v *Vault) encryptAs(ctx context.Context, o owner.ID, a Actor, action string, items []Item) ([][]byte, uint32, error) {
	if err := validateBindings(items); err != nil {
		return nil, 0, err
	}
	var (
		out []([]byte)
		ver uint32
	)
	err := v.withFreshKeys(ctx, o, true, func(ks *keyset) error {
		out, ver = make([][]byte, len(items)), ks.current
		aead := ks.aeads[ks.current]
		for i, it := range items {
			ct, err := seal(aead, ks.current, o, it.Binding, it.Data)
			if err != nil {
				return err
			}
			out[i] = ct
		}
		return v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
			e := v.entry(a, action, versionsSubject([]uint32{ks.current}), len(items))
			return v.recordUse(ctx, tx, o, e, UseCheck{Current: ks.current})
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return out, ver, nil
}

// Decrypt opens every item and records the use; the plaintexts are returned only once the
// audit entry is committed. Any item that does not open fails the whole call.
func (v *Vault) Decrypt(ctx context.Context, o owner.ID, a Actor, items []Item) ([][]byte, error) {
	return v.decryptAs(ctx, o, a, ActionDecrypt, items, nil)
}

// decryptAs is Decrypt, audited as action; accept, when not nil, must hold for every plaintext
// (an item whose plaintext it refuses fails like one that does not open).
func (v *Vault) decryptAs(ctx context.Context, o owner.ID, a Actor, action string, items []Item, accept func([]byte) bool) ([][]byte, error) {
	if err := validateBindings(items); err != nil {
		return nil, err
	}
	ks, err := v.decryptKeys(ctx, o, items)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(items))
	versions := make([]uint32, 0, 2)
	oldest := uint32(0)
	for i, it := range items {
		pt, ver, err := openWith(ks, o, it.Binding, it.Data)
		if err == nil && accept != nil && !accept(pt) {
			clear(pt)
			err = errMalformed
		}
		if err != nil {
			clearAll(out)
			return nil, itemError(i, err)
		}
		out[i] = pt
		versions = append(versions, ver)
		if oldest == 0 || ver < oldest {
			oldest = ver
		}
	}
	err = v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		e := v.entry(a, action, versionsSubject(versions), len(items))
		return v.recordUse(ctx, tx, o, e, UseCheck{OldestVersion: oldest})
	})
	if err != nil {
		clearAll(out)
		return nil, err
	}
	return out, nil
}

// clearAll zeroes plaintexts that will not be returned.
func clearAll(pts [][]byte) {
	for _, pt := range pts {
		clear(pt)
	}
}

// Rewrap moves every item to the owner's current key version without revealing it: items
// already under it are returned unchanged. It returns the ciphertexts and the version.
func (v *Vault) Rewrap(ctx context.Context, o owner.ID, a Actor, items []Item) ([][]byte, uint32, error) {
	if err := validateBindings(items); err != nil {
		return nil, 0, err
	}
	var (
		out [][]byte
		ver uint32
	)
	err := v.withFreshKeys(ctx, o, false, func(ks *keyset) error {
		out, ver = make([][]byte, len(items)), ks.current
		oldest := uint32(0)
		versions := []uint32{ks.current}
		for i, it := range items {
			pt, itemVer, err := openWith(ks, o, it.Binding, it.Data)
			if errors.Is(err, errUnknownVersion) && itemVer > ks.current {
				return errStaleCurrent // rotated elsewhere: reload and try again
			}
			if err != nil {
				return itemError(i, err)
			}
			if oldest == 0 || itemVer < oldest {
				oldest = itemVer
			}
			versions = append(versions, itemVer)
			if itemVer == ks.current {
				out[i] = it.Data
				clear(pt)
				continue
			}
			ct, err := seal(ks.aeads[ks.current], ks.current, o, it.Binding, pt)
			clear(pt)
			if err != nil {
				return err
			}
			out[i] = ct
		}
		return v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
			e := v.entry(a, ActionRewrap, versionsSubject(versions), len(items))
			return v.recordUse(ctx, tx, o, e, UseCheck{OldestVersion: oldest, Current: ks.current})
		})
	})
	if errors.Is(err, ErrNoKeyring) {
		return nil, 0, notOpen(0)
	}
	if err != nil {
		return nil, 0, err
	}
	return out, ver, nil
}

// decryptKeys returns the keys needed to open items, reloading once if one of them names a
// version newer than the cached current one (a rotation by another replica).
func (v *Vault) decryptKeys(ctx context.Context, o owner.ID, items []Item) (*keyset, error) {
	ks, err := v.keys(ctx, o, false)
	if errors.Is(err, ErrNoKeyring) {
		// A tenant without keys cannot open anything: the same answer as a wrong binding.
		return nil, notOpen(0)
	}
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if ver, err := keyVersionOf(it.Data); err == nil && ver > ks.current {
			return v.load(ctx, o, false)
		}
	}
	return ks, nil
}

var errUnknownVersion = errors.New("vault: unknown key version")

// openWith opens one ciphertext with a tenant's cached keys: the whole in-memory decrypt path.
func openWith(ks *keyset, o owner.ID, b Binding, ct []byte) ([]byte, uint32, error) {
	ver, err := keyVersionOf(ct)
	if err != nil {
		return nil, 0, err
	}
	if ver < ks.minDecrypt {
		return nil, ver, ErrRetired
	}
	aead := ks.aeads[ver]
	if aead == nil {
		return nil, ver, errUnknownVersion
	}
	pt, err := openBuf(ks.bufs, aead, o, b, ct)
	if err != nil {
		return nil, ver, err
	}
	return pt, ver, nil
}

// itemError turns an open failure into the client's answer.
func itemError(i int, err error) error {
	if errors.Is(err, ErrRetired) {
		return ErrRetired
	}
	return notOpen(i)
}
