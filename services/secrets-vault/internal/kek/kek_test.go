package kek

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
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

// secretVolume lays out a key as a Kubernetes Secret volume does: the key is a link to
// ..data/<key>, ..data a link to a timestamped directory holding the file.
func secretVolume(tb testing.TB, mode os.FileMode, size int) string {
	tb.Helper()
	dir := tb.TempDir()
	version := "..2026_11_28_21_00_00.123456789"
	require.NoError(tb, os.Mkdir(filepath.Join(dir, version), 0o755))
	key := make([]byte, size)
	_, err := rand.Read(key)
	require.NoError(tb, err)
	file := filepath.Join(dir, version, "root-key")
	require.NoError(tb, os.WriteFile(file, key, 0o600))
	require.NoError(tb, os.Chmod(file, mode))
	require.NoError(tb, os.Symlink(version, filepath.Join(dir, "..data")))
	require.NoError(tb, os.Symlink(filepath.Join("..data", "root-key"), filepath.Join(dir, "root-key")))
	return filepath.Join(dir, "root-key")
}

func link(tb testing.TB, target string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "link")
	require.NoError(tb, os.Symlink(target, path))
	return path
}

func TestOpenFileRefusesUnsafeFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	cases := []struct {
		name string
		path string
		// refused is a part of the error for a refused file; empty means accepted.
		refused string
	}{
		{"mode 0600", writeKey(t, 0o600, KeySize), ""},
		{"mode 0400", writeKey(t, 0o400, KeySize), ""},
		{"group readable 0440 (fsGroup)", writeKey(t, 0o440, KeySize), ""},
		{"group readable 0640", writeKey(t, 0o640, KeySize), ""},
		{"Secret volume 0440", secretVolume(t, 0o440, KeySize), ""},
		{"Secret volume 0400", secretVolume(t, 0o400, KeySize), ""},
		{"symlink to a 0600 file", link(t, writeKey(t, 0o600, KeySize)), ""},

		{"group writable", writeKey(t, 0o660, KeySize), "mode"},
		{"world readable", writeKey(t, 0o604, KeySize), "mode"},
		{"world readable 0644", writeKey(t, 0o644, KeySize), "mode"},
		{"world writable", writeKey(t, 0o602, KeySize), "mode"},
		{"executable", writeKey(t, 0o700, KeySize), "mode"},
		{"Secret volume 0644 (Kubernetes' default mode)", secretVolume(t, 0o644, KeySize), "mode"},
		{"symlink to a world-readable file", link(t, writeKey(t, 0o644, KeySize)), "mode"},
		{"too short", writeKey(t, 0o600, KeySize-1), "exactly"},
		{"too long", writeKey(t, 0o600, KeySize+1), "exactly"},
		{"Secret volume too short", secretVolume(t, 0o440, KeySize-1), "exactly"},
		{"symlink to a directory", link(t, t.TempDir()), "not a regular file"},
		{"symlink to a device", link(t, "/dev/zero"), "not a regular file"},
		{"FIFO (never blocks)", link(t, fifo), "not a regular file"},
		{"dangling symlink", link(t, filepath.Join(t.TempDir(), "gone")), "no such file"},
		{"missing", filepath.Join(t.TempDir(), "none"), "no such file"},
		{"relative path", "kek", "absolute"},
		{"directory", t.TempDir(), "not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := OpenFile(c.path)
			if c.refused == "" {
				require.NoError(t, err)
				require.NotEmpty(t, p.KeyID())
				return
			}
			require.ErrorContains(t, err, c.refused)
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

// TestNewKeyFile: a new key file opens as a root key, is 0600, and is never overwritten.
func TestNewKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.key")
	require.NoError(t, NewKeyFile(path))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, before, KeySize)
	_, err = OpenFile(path)
	require.NoError(t, err)

	require.Error(t, NewKeyFile(path), "an existing key is never replaced")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, before, after)

	other := filepath.Join(t.TempDir(), "other.key")
	require.NoError(t, NewKeyFile(other))
	second, err := os.ReadFile(other)
	require.NoError(t, err)
	require.NotEqual(t, before, second, "random, not fixed")
}
