package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
)

// WrappedKey is one version of a tenant's data key as stored: wrapped by the root key named
// KEKID, never in the clear.
type WrappedKey struct {
	Owner   owner.ID
	Version uint32
	KEKID   string
	Wrapped []byte
	Created time.Time
}

const wrapLabel = "forge.vault.dek.v1"

// wrapAAD binds a wrapped data key to its owner and version: a wrapped key copied to another
// tenant's row, or to another version of the same tenant, does not unwrap.
func wrapAAD(o owner.ID, v uint32) []byte {
	u := o.UUID()
	b := make([]byte, 0, len(wrapLabel)+4+16+4)
	b = append(b, wrapLabel...)
	b = appendLP(b, u[:])
	return binary.BigEndian.AppendUint32(b, v)
}

// newDataKey creates a random 256-bit data key (crypto/rand; never derived from the tenant)
// and returns it wrapped, with its AEAD for immediate use.
func newDataKey(ctx context.Context, p kek.Provider, o owner.ID, v uint32, now time.Time) (WrappedKey, cipher.AEAD, error) {
	key := make([]byte, kek.KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return WrappedKey{}, nil, fmt.Errorf("vault: data key: %w", err)
	}
	wrapped, err := p.Wrap(ctx, key, wrapAAD(o, v))
	if err != nil {
		return WrappedKey{}, nil, fmt.Errorf("vault: wrap data key: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return WrappedKey{}, nil, err
	}
	return WrappedKey{Owner: o, Version: v, KEKID: p.KeyID(), Wrapped: wrapped, Created: now}, aead, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: data key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault: data key: %w", err)
	}
	return aead, nil
}

// unwrap returns the AEAD of a stored data key.
func unwrap(ctx context.Context, p kek.Provider, k WrappedKey) (cipher.AEAD, error) {
	if k.KEKID != p.KeyID() {
		return nil, fmt.Errorf("vault: key version %d is wrapped under root key %s, the provider holds %s", k.Version, k.KEKID, p.KeyID())
	}
	key, err := p.Unwrap(ctx, k.Wrapped, wrapAAD(k.Owner, k.Version))
	if err != nil {
		return nil, fmt.Errorf("vault: unwrap key version %d: %w", k.Version, err)
	}
	defer clear(key)
	return newAEAD(key)
}
