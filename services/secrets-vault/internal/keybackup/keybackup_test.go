package keybackup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

func TestBucket(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "keyring")
	b, err := Open(ctx, "file://"+dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "a development directory is private")

	alice, bob := owner.New(), owner.New()
	now := time.Now().UTC().Truncate(time.Second)
	for _, k := range []vault.WrappedKey{
		{Owner: alice, Version: 1, KEKID: "file:1", Wrapped: []byte("w1"), Created: now},
		{Owner: alice, Version: 2, KEKID: "file:1", Wrapped: []byte("w2"), Created: now},
		{Owner: bob, Version: 1, KEKID: "file:1", Wrapped: []byte("b1"), Created: now},
	} {
		require.NoError(t, b.Put(ctx, k))
	}
	got, err := b.Get(ctx, alice, 2)
	require.NoError(t, err)
	require.Equal(t, []byte("w2"), got.Wrapped)
	require.True(t, now.Equal(got.Created))

	cases := []struct {
		name string
		run  func() error
		want map[owner.ID][]uint32
	}{
		{"listed per owner", func() error { return nil }, map[owner.ID][]uint32{alice: {1, 2}, bob: {1}}},
		{"delete versions", func() error { return b.Delete(ctx, alice, []uint32{1, 7}) }, map[owner.ID][]uint32{alice: {2}, bob: {1}}},
		{"delete owner", func() error {
			n, err := b.DeleteOwner(ctx, alice)
			require.Equal(t, 1, n)
			return err
		}, map[owner.ID][]uint32{alice: nil, bob: {1}}},
		{"delete owner again", func() error {
			n, err := b.DeleteOwner(ctx, alice)
			require.Zero(t, n)
			return err
		}, map[owner.ID][]uint32{alice: nil, bob: {1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, c.run())
			for o, want := range c.want {
				v, err := b.Versions(ctx, o)
				require.NoError(t, err)
				require.Equal(t, want, v)
			}
		})
	}
}

// TestOpenSchemes: the production bucket's s3:// URL opens (the driver is linked into the
// binary, as in apps and data-lifecycle); a scheme with no driver linked is refused.
func TestOpenSchemes(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		url  string
		ok   bool
	}{
		{"file", "file://" + filepath.Join(t.TempDir(), "keyring"), true},
		{"s3", "s3://forge-us-east-keyring?region=us-east-1", true},
		{"s3-compatible endpoint", "s3://forge-keyring?region=us-east-1&endpoint=https://objects.example.internal&use_path_style=true", true},
		{"no driver linked", "gs://forge-keyring", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Open(ctx, c.url)
			if !c.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.NoError(t, b.Close())
		})
	}
}
