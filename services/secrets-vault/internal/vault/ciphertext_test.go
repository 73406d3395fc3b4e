package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"
)

func testAEAD(tb testing.TB) cipher.AEAD {
	tb.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(tb, err)
	block, err := aes.NewCipher(key)
	require.NoError(tb, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(tb, err)
	return aead
}

func TestCiphertextBinding(t *testing.T) {
	aead := testAEAD(t)
	alice, bob := owner.New(), owner.New()
	b := Binding{Object: "app/1", Field: "name"}
	ct, err := seal(aead, 3, alice, b, []byte("hello"))
	require.NoError(t, err)
	require.Equal(t, FormatV1, ct[0])
	ver, err := keyVersionOf(ct)
	require.NoError(t, err)
	require.EqualValues(t, 3, ver)
	require.Len(t, ct, len("hello")+Overhead)

	pt, err := open(aead, alice, b, ct)
	require.NoError(t, err)
	require.Equal(t, "hello", string(pt))

	again, err := seal(aead, 3, alice, b, []byte("hello"))
	require.NoError(t, err)
	require.NotEqual(t, ct, again, "random nonces: the same plaintext never seals the same")

	flipHeader := bytes.Clone(ct)
	flipHeader[4] ^= 1 // key version 3 -> 2: the header is authenticated
	cases := []struct {
		name  string
		owner owner.ID
		b     Binding
		ct    []byte
	}{
		{"other tenant", bob, b, ct},
		{"other row", alice, Binding{Object: "app/2", Field: "name"}, ct},
		{"other field", alice, Binding{Object: "app/1", Field: "description"}, ct},
		{"ambiguous split", alice, Binding{Object: "app/1n", Field: "ame"}, ct},
		{"header changed", alice, b, flipHeader},
		{"body changed", alice, b, append(bytes.Clone(ct[:len(ct)-1]), ct[len(ct)-1]^1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := open(aead, c.owner, c.b, c.ct)
			require.Error(t, err)
		})
	}
}

func TestAADIsUnambiguous(t *testing.T) {
	o := owner.New()
	h := []byte{FormatV1, 0, 0, 0, 1}
	a := appendAAD(nil, h, o, Binding{Object: "ab", Field: "c"})
	b := appendAAD(nil, h, o, Binding{Object: "a", Field: "bc"})
	require.NotEqual(t, a, b)
}

func TestKeyVersionOfRefusesMalformed(t *testing.T) {
	good := make([]byte, Overhead)
	good[0], good[4] = FormatV1, 1
	cases := []struct {
		name string
		ct   []byte
		ok   bool
	}{
		{"minimal", good, true},
		{"empty", nil, false},
		{"short", good[:Overhead-1], false},
		{"unknown format", append([]byte{2}, good[1:]...), false},
		{"version zero", append([]byte{FormatV1, 0, 0, 0, 0}, good[5:]...), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := keyVersionOf(c.ct)
			if c.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestBindingValidateExternal(t *testing.T) {
	cases := []struct {
		name string
		b    Binding
		ok   bool
	}{
		{"ok", Binding{Object: "app/1", Field: "name"}, true},
		{"no object", Binding{Field: "name"}, false},
		{"no field", Binding{Object: "app/1"}, false},
		{"reserved", secretBinding("1", "KEY"), false},
		{"long object", Binding{Object: string(make([]byte, 257)), Field: "f"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.b.ValidateExternal()
			if c.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestKeyCache(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	c := newKeyCache(2, time.Minute, clock)
	a, b, d := owner.New(), owner.New(), owner.New()
	c.put(a, &keyset{current: 1}, c.generation())
	now = now.Add(time.Millisecond)
	c.put(b, &keyset{current: 1}, c.generation())
	_, ok := c.get(a)
	require.True(t, ok)

	now = now.Add(time.Second)
	c.put(d, &keyset{current: 1}, c.generation())
	require.Equal(t, 2, c.len(), "bounded")
	_, ok = c.get(a)
	require.False(t, ok, "the oldest entry was evicted")

	now = now.Add(time.Minute)
	_, ok = c.get(d)
	require.False(t, ok, "expired")

	gen := c.generation()
	c.drop(b)
	_, ok = c.get(b)
	require.False(t, ok, "dropped")
	c.put(b, &keyset{current: 1}, gen)
	_, ok = c.get(b)
	require.False(t, ok, "a load that started before a drop is not cached")
}

func TestKeyCacheRealClockExpires(t *testing.T) {
	c := newKeyCache(10, 20*time.Millisecond, nil)
	o := owner.New()
	c.put(o, &keyset{current: 1}, c.generation())
	_, ok := c.get(o)
	require.True(t, ok)
	require.Eventually(t, func() bool {
		_, ok := c.get(o)
		return !ok && c.len() == 0
	}, 5*time.Second, 5*time.Millisecond, "the entry is dropped when its TTL ends")
}

func TestNormalizeUpstreamHost(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"api.openai.com", "api.openai.com"},
		{"API.Example.COM:8443", "api.example.com:8443"},
		{"api.example.com.", "api.example.com"},
		{"", ""},
		{"localhost", ""},
		{"foo.localhost", ""},
		{"metadata.google.internal", ""},
		{"127.0.0.1", ""},
		{"169.254.169.254:80", ""},
		{"[::1]:443", ""},
		{"https://api.example.com", ""},
		{"api.example.com/path", ""},
		{"user@api.example.com", ""},
		{"api.example.com:0", ""},
		{"api.example.com:65536", ""},
		{"api..example.com", ""},
		{"-bad.example.com", ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := NormalizeUpstreamHost(c.in)
			if c.want == "" {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
}
