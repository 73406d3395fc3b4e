// Package envelope is the format apps seals large content in (version files and reference
// contents): AES-256-GCM under a fresh data key per object. Sending every megabyte to
// secrets-vault and back cost 3-5x a plain object-storage round trip, so the vault issues the
// key (GenerateDataKey) and apps seals the bytes itself; the vault wraps the key under the
// tenant's key and only the vault unwraps it again (DecryptDataKey). This package only seals
// and opens; the keys come from, and are dropped by, the vault adapter (package vault).
//
// Format, version 1:
//
//	[0:2]   header: 'e' (envelope), format version 1
//	[2:14]  random 96-bit nonce (crypto/rand)
//	[14:]   AES-256-GCM sealed data (ciphertext and 16-byte tag)
//
// Associated data: a fixed label, the header, then the length-prefixed (4-byte big-endian)
// owner ID (16 bytes), object and field. An object copied to another row, app, field or
// tenant, or opened under another object's key, fails to open; so does any changed byte,
// the header included. The header's first byte is not the vault's format byte (1), so an
// object sealed by the vault itself is refused as malformed, not mistaken for this format.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/forgeapps/backbone/pkg/owner"
)

const (
	magic    byte = 'e'
	formatV1 byte = 1
	// KeySize is the size of a data key: AES-256.
	KeySize   = 32
	headerLen = 2
	nonceLen  = 12
	tagLen    = 16
	prefixLen = headerLen + nonceLen
	// Overhead is how many bytes sealing adds to the content.
	Overhead = prefixLen + tagLen
	aadLabel = "forge.apps.envelope.v1"
)

// Binding is where sealed content belongs: its owner, object and field.
type Binding struct {
	Owner  owner.ID
	Object string
	Field  string
}

var (
	// ErrMalformed is sealed data too short or of an unknown format.
	ErrMalformed = errors.New("envelope: malformed sealed data")
	// ErrOpen is sealed data that does not open with this key for this binding.
	ErrOpen = errors.New("envelope: does not open for this key, owner, object and field")
)

// aad returns the associated data of content with the given header.
func aad(header []byte, b Binding) []byte {
	u := b.Owner.UUID()
	out := make([]byte, 0, len(aadLabel)+len(header)+3*4+len(u)+len(b.Object)+len(b.Field))
	out = append(out, aadLabel...)
	out = append(out, header...)
	for _, f := range [][]byte{u[:], []byte(b.Object), []byte(b.Field)} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("envelope: a data key is %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return aead, nil
}

// Seal encrypts content with key (a fresh data key of this object) for binding b.
func Seal(key []byte, b Binding, content []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, prefixLen, prefixLen+len(content)+tagLen)
	out[0], out[1] = magic, formatV1
	if _, err := rand.Read(out[headerLen:prefixLen]); err != nil {
		return nil, fmt.Errorf("envelope: nonce: %w", err)
	}
	return aead.Seal(out, out[headerLen:prefixLen], content, aad(out[:headerLen], b)), nil
}

// Open decrypts what Seal sealed with the same key for the same binding.
func Open(key []byte, b Binding, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead || sealed[0] != magic || sealed[1] != formatV1 {
		return nil, ErrMalformed
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	content, err := aead.Open(nil, sealed[headerLen:prefixLen], sealed[prefixLen:], aad(sealed[:headerLen], b))
	if err != nil {
		return nil, ErrOpen
	}
	return content, nil
}
