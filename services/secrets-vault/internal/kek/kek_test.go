package kek

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeKey(tb testing.TB, mode os.FileMode, size int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "kek")
	key := make([]byte, size)
	_, err := rand.Read(key)
	require.NoError(tb, err)
	require.NoError(tb, os.WriteFile(path, key, 0o600))
	require.NoError(tb, os.Chmod(path, mode))
	return path
}

func TestOpenFileRefusesUnsafeFiles(t *testing.T) {
	good := writeKey(t, 0o600, KeySize)
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(good, link))
	cases := []struct {
		name string
		path string
		ok   bool
	}{
		{"mode 0600", good, true},
		{"mode 0400", writeKey(t, 0o400, KeySize), true},
		{"group readable", writeKey(t, 0o640, KeySize), false},
		{"world readable", writeKey(t, 0o604, KeySize), false},
		{"too short", writeKey(t, 0o600, KeySize-1), false},
		{"too long", writeKey(t, 0o600, KeySize+1), false},
		{"symlink", link, false},
		{"missing", filepath.Join(t.TempDir(), "none"), false},
		{"relative path", "kek", false},
		{"directory", t.TempDir(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := OpenFile(c.path)
			if c.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestOpenURL(t *testing.T) {
	path := writeKey(t, 0o600, KeySize)
	cases := []struct {
		name string
		url  string
		ok   bool
	}{
		{"file", "file://" + path, true},
		{"file with host", "file://host" + path, false},
		{"file with query", "file://" + path + "?x=1", false},
		{"no scheme", path, false},
		{"kms not built in", "awskms:///alias/forge-us-east-root?region=us-east-1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(c.url)
			if c.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestWrapBindsAADAndKey(t *testing.T) {
	ctx := context.Background()
	p, err := OpenFile(writeKey(t, 0o600, KeySize))
	require.NoError(t, err)
	other, err := OpenFile(writeKey(t, 0o600, KeySize))
	require.NoError(t, err)
	require.NotEqual(t, p.KeyID(), other.KeyID())

	dek := make([]byte, KeySize)
	_, err = rand.Read(dek)
	require.NoError(t, err)
	wrapped, err := p.Wrap(ctx, dek, []byte("owner-a/v1"))
	require.NoError(t, err)
	require.NotContains(t, string(wrapped), string(dek))

	got, err := p.Unwrap(ctx, wrapped, []byte("owner-a/v1"))
	require.NoError(t, err)
	require.Equal(t, dek, got)

	cases := []struct {
		name    string
		p       Provider
		wrapped []byte
		aad     string
	}{
		{"other aad", p, wrapped, "owner-b/v1"},
		{"other root key", other, wrapped, "owner-a/v1"},
		{"truncated", p, wrapped[:len(wrapped)-1], "owner-a/v1"},
		{"tampered", p, append(append([]byte{}, wrapped[:len(wrapped)-1]...), wrapped[len(wrapped)-1]^1), "owner-a/v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.p.Unwrap(ctx, c.wrapped, []byte(c.aad))
			require.ErrorIs(t, err, ErrUnwrap)
		})
	}
}
