package keybackup

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/memblob"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup/s3test"
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

// TestCheckUnversioned: serve and restore-keyring accept only a bucket that keeps no object
// versions, and refuse one they cannot check. The S3 cases go through the production s3://
// URL, the AWS SDK and HTTP to an in-memory S3 that implements versioning.
func TestCheckUnversioned(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	s3Bucket := func(name string, statuses ...gofakes3.VersioningStatus) func(t *testing.T) *Bucket {
		return func(t *testing.T) *Bucket {
			rawURL := srv.CreateBucket(t, name)
			for _, s := range statuses {
				srv.SetVersioning(t, name, s)
			}
			b, err := Open(ctx, rawURL)
			require.NoError(t, err)
			return b
		}
	}
	cases := []struct {
		name    string
		open    func(t *testing.T) *Bucket
		wantErr []string // empty: accepted
	}{
		{name: "file directory (development)", open: func(t *testing.T) *Bucket {
			b, err := Open(ctx, "file://"+t.TempDir())
			require.NoError(t, err)
			return b
		}},
		{name: "s3 bucket that never had versioning", open: s3Bucket("never-versioned")},
		{name: "s3 bucket with versioning enabled", open: s3Bucket("enabled", gofakes3.VersioningEnabled),
			wantErr: []string{`bucket "enabled" has versioning Enabled`, "old version", "never had versioning"}},
		{name: "s3 bucket with versioning suspended", open: s3Bucket("suspended", gofakes3.VersioningEnabled, gofakes3.VersioningSuspended),
			wantErr: []string{`bucket "suspended" has versioning Suspended`, "old version", "never had versioning"}},
		{name: "s3 bucket whose versioning the role may not read", open: func(t *testing.T) *Bucket {
			denied := s3test.Start(t)
			denied.DenyVersioningRead()
			b, err := Open(ctx, denied.CreateBucket(t, "denied"))
			require.NoError(t, err)
			return b
		}, wantErr: []string{`bucket "denied"`, "cannot be checked", "needs s3:GetBucketVersioning", "AccessDenied"}},
		{name: "s3 bucket that does not exist", open: func(t *testing.T) *Bucket {
			b, err := Open(ctx, strings.Replace(srv.CreateBucket(t, "exists"), "s3://exists", "s3://missing", 1))
			require.NoError(t, err)
			return b
		}, wantErr: []string{`bucket "missing"`, "cannot be checked", "NoSuchBucket"}},
		{name: "scheme other than file and s3", open: func(t *testing.T) *Bucket {
			return &Bucket{b: memblob.OpenBucket(nil), u: &url.URL{Scheme: "mem"}}
		}, wantErr: []string{"cannot check a mem:// bucket"}},
		{name: "bucket wrapped without its URL", open: func(t *testing.T) *Bucket {
			return New(memblob.OpenBucket(nil))
		}, wantErr: []string{"not opened from a URL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.open(t)
			t.Cleanup(func() { _ = b.Close() })
			err := b.CheckUnversioned(ctx)
			if len(c.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range c.wantErr {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestVersionedBucketOutlivesShred shows what CheckUnversioned protects: in a versioned bucket
// a shred's delete leaves the wrapped key behind as an old version, restorable, while the
// listing the shred verifies with says it is gone. In a bucket that never had versioning the
// same delete leaves nothing, and that is the only kind the check accepts.
func TestVersionedBucketOutlivesShred(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	cases := []struct {
		name      string
		bucket    string
		versions  []gofakes3.VersioningStatus
		surviving int
		refused   bool
	}{
		{name: "never versioned: the delete reaches every copy", bucket: "plain"},
		{name: "versioning enabled: the old version survives", bucket: "versioned",
			versions: []gofakes3.VersioningStatus{gofakes3.VersioningEnabled}, surviving: 1, refused: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rawURL := srv.CreateBucket(t, c.bucket)
			for _, s := range c.versions {
				srv.SetVersioning(t, c.bucket, s)
			}
			b, err := Open(ctx, rawURL)
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close() })

			alice := owner.New()
			wrapped := []byte("alice's wrapped key v1")
			require.NoError(t, b.Put(ctx, vault.WrappedKey{Owner: alice, Version: 1, KEKID: "file:1", Wrapped: wrapped, Created: time.Now()}))
			n, err := b.DeleteOwner(ctx, alice)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			listed, err := b.Versions(ctx, alice)
			require.NoError(t, err)
			require.Empty(t, listed, "the listing a shred verifies with says the backups are gone")

			var client *s3.Client
			require.True(t, b.b.As(&client), "s3blob exposes its *s3.Client")
			out, err := client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(c.bucket), Prefix: aws.String(ownerPrefix(alice))})
			require.NoError(t, err)
			require.Len(t, out.Versions, c.surviving, "object versions left after the delete")
			for _, v := range out.Versions {
				obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: v.Key, VersionId: v.VersionId})
				require.NoError(t, err)
				body, err := io.ReadAll(obj.Body)
				_ = obj.Body.Close()
				require.NoError(t, err)
				var r record
				require.NoError(t, json.Unmarshal(body, &r))
				require.Equal(t, wrapped, r.Wrapped, "the shredded tenant's wrapped key is still readable")
			}

			err = b.CheckUnversioned(ctx)
			if c.refused {
				require.ErrorContains(t, err, "has versioning Enabled")
			} else {
				require.NoError(t, err)
			}
		})
	}
}
