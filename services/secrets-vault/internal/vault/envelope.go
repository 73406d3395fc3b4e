package vault

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/forgeapps/backbone/pkg/owner"
)

// Envelope encryption for other services' large content. Sending a megabyte to the vault and
// back costs far more than sealing it, so a service asks for a fresh data key per object,
// seals the object itself with it, stores the key wrapped and forgets the clear key. The
// wrapped key is an ordinary ciphertext of this package (format, key version, associated data
// binding owner, object and field), sealed under the tenant's key: only the vault opens it,
// Rewrap moves it to a new key version, retiring a version makes it unreadable, and a shred
// leaves it (and so the object) unreadable for good.
//
// These per-object keys are not the tenant's keys ("data keys" of the key hierarchy, which
// never leave the vault): each one encrypts one object and is worth that object alone.

// DataKeySize is the size of a data key GenerateDataKeys issues (AES-256).
const DataKeySize = 32

// DataKey is a fresh data key for one object: in the clear for the caller's immediate use,
// and wrapped for storage next to the object.
type DataKey struct {
	Plaintext []byte
	Wrapped   []byte
}

// GenerateDataKeys issues one fresh random data key per binding and returns each with its
// wrapped form, sealed under the owner's current key version for that binding (creating the
// owner's first key on first use, as Encrypt does), and the version. The use is audited like
// Encrypt; the keys are returned only once the audit entry is committed.
func (v *Vault) GenerateDataKeys(ctx context.Context, o owner.ID, a Actor, bindings []Binding) ([]DataKey, uint32, error) {
	items := make([]Item, len(bindings))
	for i, b := range bindings {
		key := make([]byte, DataKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, 0, fmt.Errorf("vault: data key: %w", err)
		}
		items[i] = Item{Binding: b, Data: key}
	}
	wrapped, ver, err := v.encryptAs(ctx, o, a, ActionGenerateDataKey, items)
	if err != nil {
		for _, it := range items {
			clear(it.Data)
		}
		return nil, 0, err
	}
	out := make([]DataKey, len(items))
	for i, it := range items {
		out[i] = DataKey{Plaintext: it.Data, Wrapped: wrapped[i]}
	}
	return out, ver, nil
}

// DecryptDataKeys opens wrapped data keys with the rules of Decrypt (bindings, retired
// versions, shredded owners, one bad item fails the call, audited before anything is
// returned). An item that opens to anything but a DataKeySize-byte key fails as one that does
// not open: this method returns keys, not content.
func (v *Vault) DecryptDataKeys(ctx context.Context, o owner.ID, a Actor, items []Item) ([][]byte, error) {
	return v.decryptAs(ctx, o, a, ActionDecryptDataKey, items, func(pt []byte) bool { return len(pt) == DataKeySize })
}
