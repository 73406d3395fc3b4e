package keyprovider_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/keyprovider"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "kek")
	require.NoError(t, os.WriteFile(key, make([]byte, 32), 0o600))
	w, err := keyprovider.Open("file://" + key)
	require.NoError(t, err)
	wrapped, err := w.Wrap(context.Background(), []byte("0123456789abcdef0123456789abcdef"), []byte("aad"))
	require.NoError(t, err)
	_, err = w.Unwrap(context.Background(), wrapped, []byte("other aad"))
	require.ErrorIs(t, err, keyprovider.ErrUnwrap)
	got, err := w.Unwrap(context.Background(), wrapped, []byte("aad"))
	require.NoError(t, err)
	require.Equal(t, "0123456789abcdef0123456789abcdef", string(got))

	cases := []struct {
		name string
		url  string
		prep func(p string)
	}{
		{"world readable", "file://" + filepath.Join(dir, "a"), func(p string) { require.NoError(t, os.WriteFile(p, make([]byte, 32), 0o604)) }},
		{"wrong size", "file://" + filepath.Join(dir, "b"), func(p string) { require.NoError(t, os.WriteFile(p, make([]byte, 31), 0o600)) }},
		{"relative", "file://rel/path", nil},
		{"kms not built in", "awskms:///alias/x", nil},
		{"no scheme", filepath.Join(dir, "kek"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prep != nil {
				tc.prep(tc.url[len("file://"):])
			}
			_, err := keyprovider.Open(tc.url)
			require.Error(t, err)
		})
	}

	sk := filepath.Join(dir, "signing.pem")
	pub, err := keyprovider.WriteSigningKey(sk)
	require.NoError(t, err)
	priv, err := keyprovider.LoadSigningKey(sk)
	require.NoError(t, err)
	require.Equal(t, pub, priv.Public())
	require.NoError(t, os.Chmod(sk, 0o644))
	_, err = keyprovider.LoadSigningKey(sk)
	require.Error(t, err, "a signing key other users can read is refused")
}
