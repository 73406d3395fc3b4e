package envelope_test

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/apps/internal/envelope"
)

func newKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, envelope.KeySize)
	_, err := rand.Read(k)
	require.NoError(tb, err)
	return k
}

func TestSealOpen(t *testing.T) {
	alice, bob := owner.New(), owner.New()
	key, otherKey := newKey(t), newKey(t)
	b := envelope.Binding{Owner: alice, Object: "version/app-1/1/aaaa", Field: "content"}
	content := []byte("<!doctype html><h1>hello</h1>")
	sealed, err := envelope.Seal(key, b, content)
	require.NoError(t, err)
	require.Len(t, sealed, len(content)+envelope.Overhead)
	require.Equal(t, []byte{'e', 1}, sealed[:2], "the versioned header")
	require.False(t, bytes.Contains(sealed, content))

	got, err := envelope.Open(key, b, sealed)
	require.NoError(t, err)
	require.Equal(t, content, got)
	again, err := envelope.Seal(key, b, content)
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "random nonces: the same content never seals the same")

	empty, err := envelope.Seal(key, b, nil)
	require.NoError(t, err)
	got, err = envelope.Open(key, b, empty)
	require.NoError(t, err)
	require.Empty(t, got)

	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		return c
	}
	vaultFormat := bytes.Clone(sealed)
	vaultFormat[0] = 1
	cases := []struct {
		name   string
		key    []byte
		b      envelope.Binding
		sealed []byte
		want   error
	}{
		{"another object's key", otherKey, b, sealed, envelope.ErrOpen},
		{"another tenant", key, envelope.Binding{Owner: bob, Object: b.Object, Field: b.Field}, sealed, envelope.ErrOpen},
		{"another object", key, envelope.Binding{Owner: alice, Object: "version/app-1/2/aaaa", Field: "content"}, sealed, envelope.ErrOpen},
		{"another field", key, envelope.Binding{Owner: alice, Object: b.Object, Field: "meta"}, sealed, envelope.ErrOpen},
		{"ambiguous split", key, envelope.Binding{Owner: alice, Object: b.Object + "c", Field: "ontent"}, sealed, envelope.ErrOpen},
		{"nonce changed", key, b, flip(5), envelope.ErrOpen},
		{"body changed", key, b, flip(len(sealed) - 20), envelope.ErrOpen},
		{"tag changed", key, b, flip(len(sealed) - 1), envelope.ErrOpen},
		{"format version changed", key, b, flip(1), envelope.ErrMalformed},
		{"the vault's format", key, b, vaultFormat, envelope.ErrMalformed},
		{"truncated", key, b, sealed[:envelope.Overhead-1], envelope.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := envelope.Open(c.key, c.b, c.sealed)
			require.ErrorIs(t, err, c.want)
			require.Nil(t, got)
		})
	}
}

func TestKeySizeIsChecked(t *testing.T) {
	b := envelope.Binding{Owner: owner.New(), Object: "o", Field: "f"}
	sealed, err := envelope.Seal(newKey(t), b, []byte("x"))
	require.NoError(t, err)
	for _, n := range []int{0, 16, 24, 31, 33} {
		_, err := envelope.Seal(make([]byte, n), b, []byte("x"))
		require.Error(t, err, "a %d-byte key", n)
		_, err = envelope.Open(make([]byte, n), b, sealed)
		require.Error(t, err, "a %d-byte key", n)
	}
}
