package keybackup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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

// TestOwners: the restore walks every owner folder of the bucket, and refuses a bucket holding
// anything else under keyring/ rather than skip it.
func TestOwners(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := Open(ctx, "file://"+dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })

	got, err := b.Owners(ctx)
	require.NoError(t, err)
	require.Empty(t, got, "an empty bucket has no owners")

	alice, bob := owner.New(), owner.New()
	for _, k := range []vault.WrappedKey{
		{Owner: alice, Version: 1, KEKID: "file:1", Wrapped: []byte("w1"), Created: time.Now()},
		{Owner: alice, Version: 2, KEKID: "file:1", Wrapped: []byte("w2"), Created: time.Now()},
		{Owner: bob, Version: 1, KEKID: "file:1", Wrapped: []byte("b1"), Created: time.Now()},
	} {
		require.NoError(t, b.Put(ctx, k))
	}
	got, err = b.Owners(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []owner.ID{alice, bob}, got, "each owner once, however many versions")

	_, err = b.DeleteOwner(ctx, alice)
	require.NoError(t, err)
	got, err = b.Owners(ctx)
	require.NoError(t, err)
	require.Equal(t, []owner.ID{bob}, got, "a shredded owner's folder is gone")

	cases := []struct {
		name string
		key  string
	}{
		{"object beside the owner folders", "keyring/stray.json"},
		{"object named like an owner folder", "keyring/" + owner.New().String()},
		{"folder that is no owner ID", "keyring/not-an-owner/0000000001.json"},
		{"owner ID not in canonical form", "keyring/" + strings.ToUpper(alice.String()) + "/0000000001.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stray, err := Open(ctx, "file://"+t.TempDir())
			require.NoError(t, err)
			t.Cleanup(func() { _ = stray.Close() })
			require.NoError(t, stray.Put(ctx, vault.WrappedKey{Owner: bob, Version: 1, KEKID: "file:1", Wrapped: []byte("b1")}))
			require.NoError(t, stray.b.WriteAll(ctx, c.key, []byte("{}"), nil))
			_, err = stray.Owners(ctx)
			require.ErrorContains(t, err, "unexpected object")
		})
	}
}

// TestOpenExisting: the restore opens the bucket without creating it, so a mistyped directory
// fails instead of reading as an empty bucket.
func TestOpenExisting(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "keyring")
	_, err := OpenExisting(ctx, "file://"+dir)
	require.Error(t, err)
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "nothing created")

	require.NoError(t, os.Mkdir(dir, 0o700))
	b, err := OpenExisting(ctx, "file://"+dir)
	require.NoError(t, err)
	require.NoError(t, b.Close())
}
