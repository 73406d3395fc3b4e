package vault

import (
	"crypto/cipher"
	"time"

	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"
)

// BenchmarkDecryptSmallSecret compares the vault's in-memory decrypt path with a cached key
// (cache lookup, header parse, version and policy checks, associated data, open) against a
// bare cipher.AEAD.Open of the same ciphertext with precomputed associated data. The audit
// insert that every Decrypt call also commits is a database round trip, measured by the gRPC
// benchmarks instead.
func BenchmarkDecryptSmallSecret(b *testing.B) {
	aead := testAEAD(b)
	o := owner.New()
	bind := Binding{Object: "app/0b7c5a52-6d43-4a58-9d59-2f1f3e0b9a11", Field: "name"}
	secretValue := []byte("sk-live-0123456789abcdef0123456789abcdef") // 40 bytes
	ct, err := seal(aead, 1, o, bind, secretValue)
	require.NoError(b, err)

	b.Run("bare-aead-open", func(b *testing.B) {
		aad := appendAAD(nil, ct[:headerLen], o, bind)
		nonce, body := ct[headerLen:prefixLen], ct[prefixLen:]
		b.ReportAllocs()
		for b.Loop() {
			if _, err := aead.Open(nil, nonce, body, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vault-cached-key", func(b *testing.B) {
		cache := newKeyCache(10000, time.Hour, nil)
		ks := &keyset{current: 1, minDecrypt: 1, aeads: map[uint32]cipher.AEAD{1: aead}, bufs: newAADBuffers()}
		cache.put(o, ks, cache.generation())
		b.ReportAllocs()
		for b.Loop() {
			ks, ok := cache.get(o)
			if !ok {
				b.Fatal("cache miss")
			}
			if _, _, err := openWith(ks, o, bind, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}
