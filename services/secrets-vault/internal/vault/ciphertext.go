package vault

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/forgeapps/backbone/pkg/owner"
)

// The ciphertext format, version 1:
//
//	[0]      format version (1)
//	[1:5]    key version, big-endian uint32
//	[5:17]   random 96-bit nonce (crypto/rand)
//	[17:]    AES-256-GCM sealed data (ciphertext and 16-byte tag)
//
// The associated data is the 5-byte header followed by the length-prefixed (4-byte big-endian
// length) owner ID (16 bytes), object and field, after a fixed context label. Length prefixes
// make the encoding unambiguous: ("ab","c") and ("a","bc") never produce the same bytes, so a
// ciphertext copied to another row, app, field or tenant fails to open.
const (
	FormatV1     byte = 1
	headerLen         = 1 + 4
	nonceLen          = 12
	tagLen            = 16
	prefixLen         = headerLen + nonceLen
	aadLabel          = "forge.vault.ct.v1"
	maxObjectLen      = 256
	maxFieldLen       = 64
)

// Overhead is how many bytes a ciphertext adds to its plaintext.
const Overhead = prefixLen + tagLen

// internalObjectPrefix marks bindings the vault uses for its own secrets. Other services may
// not name such objects, so no CryptoService call can open a secret value.
const internalObjectPrefix = "vault:"

// Binding is where a ciphertext belongs: the object (row) and the field in it. The owner comes
// from the request's verified owner, never from the caller's payload.
type Binding struct {
	Object string
	Field  string
}

// ValidateExternal checks a binding supplied by another service.
func (b Binding) ValidateExternal() error {
	switch {
	case b.Object == "" || len(b.Object) > maxObjectLen:
		return errors.New("object must be 1 to 256 bytes")
	case b.Field == "" || len(b.Field) > maxFieldLen:
		return errors.New("field must be 1 to 64 bytes")
	case strings.HasPrefix(b.Object, internalObjectPrefix):
		return fmt.Errorf("object names starting with %q are reserved", internalObjectPrefix)
	}
	return nil
}

func secretBinding(appID, name string) Binding {
	return Binding{Object: internalObjectPrefix + "secret/" + appID + "/" + name, Field: "value"}
}

// appendAAD appends the associated data of a ciphertext with the given header.
func appendAAD(dst, header []byte, o owner.ID, b Binding) []byte {
	dst = append(dst, aadLabel...)
	dst = append(dst, header...)
	u := o.UUID()
	dst = appendLP(dst, u[:])
	dst = appendLP(dst, []byte(b.Object))
	dst = appendLP(dst, []byte(b.Field))
	return dst
}

func appendLP(dst, field []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(field)))
	return append(dst, field...)
}

// aadBufLen fits the AAD of most bindings without a second allocation.
const aadBufLen = 192

// seal encrypts plaintext under aead (key version v) for owner o and binding b.
func seal(aead cipher.AEAD, v uint32, o owner.ID, b Binding, plaintext []byte) ([]byte, error) {
	out := make([]byte, prefixLen, prefixLen+len(plaintext)+tagLen)
	out[0] = FormatV1
	binary.BigEndian.PutUint32(out[1:headerLen], v)
	if _, err := rand.Read(out[headerLen:prefixLen]); err != nil {
		return nil, fmt.Errorf("vault: nonce: %w", err)
	}
	aad := appendAAD(make([]byte, 0, aadBufLen), out[:headerLen], o, b)
	return aead.Seal(out, out[headerLen:prefixLen], plaintext, aad), nil
}

// errMalformed is a ciphertext too short or of an unknown format.
var errMalformed = errors.New("vault: malformed ciphertext")

// keyVersionOf reads the key version of a ciphertext's header.
func keyVersionOf(ct []byte) (uint32, error) {
	if len(ct) < Overhead || ct[0] != FormatV1 {
		return 0, errMalformed
	}
	v := binary.BigEndian.Uint32(ct[1:headerLen])
	if v == 0 {
		return 0, errMalformed
	}
	return v, nil
}

// aadBuffers recycles associated-data buffers: a buffer escapes through the AEAD interface,
// and on the decrypt path an allocation per call costs about as much as the cipher itself.
type aadBuffers struct{ pool sync.Pool }

func newAADBuffers() *aadBuffers {
	return &aadBuffers{pool: sync.Pool{New: func() any { b := make([]byte, 0, aadBufLen); return &b }}}
}

// open decrypts ct (whose header was checked by keyVersionOf) for owner o and binding b.
func open(aead cipher.AEAD, o owner.ID, b Binding, ct []byte) ([]byte, error) {
	return openBuf(nil, aead, o, b, ct)
}

// openBuf is open with a buffer pool (nil: allocate).
func openBuf(bufs *aadBuffers, aead cipher.AEAD, o owner.ID, b Binding, ct []byte) ([]byte, error) {
	if bufs == nil {
		aad := appendAAD(make([]byte, 0, aadBufLen), ct[:headerLen], o, b)
		return aead.Open(nil, ct[headerLen:prefixLen], ct[prefixLen:], aad)
	}
	bp := bufs.pool.Get().(*[]byte)
	aad := appendAAD((*bp)[:0], ct[:headerLen], o, b)
	pt, err := aead.Open(nil, ct[headerLen:prefixLen], ct[prefixLen:], aad)
	if cap(aad) <= 4*aadBufLen {
		*bp = aad
		bufs.pool.Put(bp)
	}
	return pt, err
}
