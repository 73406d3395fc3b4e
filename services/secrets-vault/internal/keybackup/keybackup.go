// Package keybackup keeps the vault's own backup of every wrapped tenant key version in object
// storage (gocloud.dev/blob: a local directory in development, a bucket in production). It is
// the only backup of tenant keys (database dumps exclude the key table), so that deleting a
// tenant's objects here is all it takes for a shred to reach the backups too, provided the
// bucket keeps no old versions of them (Bucket.CheckUnversioned). The objects hold only
// wrapped keys: reading them yields nothing without the region's root key.
package keybackup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// buckets (development)
	_ "gocloud.dev/blob/s3blob"   // s3:// buckets (production)
	"gocloud.dev/gcerrors"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// prefix is where key objects live in the bucket: keyring/<owner_id>/<version>.json.
const prefix = "keyring/"

// Bucket implements vault.KeyBackup over a gocloud.dev bucket.
type Bucket struct {
	b *blob.Bucket
	// u is the URL the bucket was opened at (Open, OpenExisting), which CheckUnversioned needs
	// for its kind and name; nil for a bucket wrapped by New.
	u *url.URL
}

// Open opens the bucket at url: file:///var/lib/forge/keyring in development, or
// s3://bucket?region=... (S3 or an S3-compatible store) in production.
func Open(ctx context.Context, rawURL string) (*Bucket, error) {
	return open(ctx, rawURL, true)
}

// OpenExisting opens the bucket at rawURL like Open, but never creates a development
// directory: a restore pointed at a wrong path must fail, not read an empty bucket it made.
func OpenExisting(ctx context.Context, rawURL string) (*Bucket, error) {
	return open(ctx, rawURL, false)
}

func open(ctx context.Context, rawURL string, create bool) (*Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("keybackup: open: %w", err)
	}
	if create && u.Scheme == "file" && u.Path != "" {
		// A development directory is created on first start, readable by the service only.
		if err := os.MkdirAll(u.Path, 0o700); err != nil {
			return nil, fmt.Errorf("keybackup: open: %w", err)
		}
	}
	b, err := blob.OpenBucket(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("keybackup: open: %w", err)
	}
	return &Bucket{b: b, u: u}, nil
}

// New wraps an open bucket. CheckUnversioned refuses it: it has no URL to tell its kind.
func New(b *blob.Bucket) *Bucket { return &Bucket{b: b} }

// CheckUnversioned refuses a bucket that keeps old versions of its objects. In an S3 bucket
// whose versioning is Enabled, or Suspended after it was, deleting an object only adds a
// delete marker: a shred's listing then says the tenant's backups are gone while every old
// version of its wrapped keys survives, restorable, where the shred never reaches. Object Lock
// and replication both require versioning, so they are refused with it. A status that cannot
// be read refuses too: the vault never starts on a bucket it could not check. A file://
// directory (development) keeps no versions. serve runs it at start, and restore-keyring
// before it writes anything.
func (k *Bucket) CheckUnversioned(ctx context.Context) error {
	if k.u == nil {
		return errors.New("keybackup: versioning check: the bucket was not opened from a URL, so its kind is unknown")
	}
	switch k.u.Scheme {
	case "file":
		return nil
	case "s3":
		return k.checkS3Unversioned(ctx)
	default:
		return fmt.Errorf("keybackup: versioning check: cannot check a %s:// bucket (only file:// and s3:// are supported)", k.u.Scheme)
	}
}

func (k *Bucket) checkS3Unversioned(ctx context.Context) error {
	name := k.u.Host // s3blob's bucket name
	var client *s3.Client
	if !k.b.As(&client) {
		return fmt.Errorf("keybackup: versioning check: bucket %q: no S3 client to ask", name)
	}
	out, err := client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(name)})
	var apiErr smithy.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDenied":
		return fmt.Errorf("keybackup: bucket %q: refusing a bucket whose versioning cannot be checked: the vault's role needs s3:GetBucketVersioning on it: %w", name, err)
	case err != nil:
		return fmt.Errorf("keybackup: bucket %q: refusing a bucket whose versioning cannot be checked: %w", name, err)
	}
	switch out.Status {
	case "": // versioning never enabled
		return nil
	case types.BucketVersioningStatusEnabled, types.BucketVersioningStatusSuspended:
		return fmt.Errorf("keybackup: bucket %q has versioning %s, refused: a shred's deletes would only add delete markers, and every old version of "+
			"the tenant's wrapped keys would survive it; use a bucket that never had versioning (nor Object Lock)", name, out.Status)
	default:
		return fmt.Errorf("keybackup: bucket %q: unknown versioning status %q, refused", name, out.Status)
	}
}

// Close closes the bucket.
func (k *Bucket) Close() error { return k.b.Close() }

// record is one backed-up key version as stored.
type record struct {
	OwnerID string    `json:"owner_id"`
	Version uint32    `json:"version"`
	KEKID   string    `json:"kek_id"`
	Wrapped []byte    `json:"wrapped"`
	Created time.Time `json:"created_at"`
}

func ownerPrefix(o owner.ID) string { return prefix + o.String() + "/" }

func key(o owner.ID, v uint32) string {
	return fmt.Sprintf("%s%010d.json", ownerPrefix(o), v)
}

// Put implements vault.KeyBackup.
func (k *Bucket) Put(ctx context.Context, wk vault.WrappedKey) error {
	body, err := json.Marshal(record{OwnerID: wk.Owner.String(), Version: wk.Version, KEKID: wk.KEKID, Wrapped: wk.Wrapped, Created: wk.Created})
	if err != nil {
		return fmt.Errorf("keybackup: put: %w", err)
	}
	if err := k.b.WriteAll(ctx, key(wk.Owner, wk.Version), body, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("keybackup: put: %w", err)
	}
	return nil
}

// Get reads one backed-up version (for restores and tests).
func (k *Bucket) Get(ctx context.Context, o owner.ID, v uint32) (vault.WrappedKey, error) {
	body, err := k.b.ReadAll(ctx, key(o, v))
	if err != nil {
		return vault.WrappedKey{}, fmt.Errorf("keybackup: get: %w", err)
	}
	var r record
	if err := json.Unmarshal(body, &r); err != nil {
		return vault.WrappedKey{}, fmt.Errorf("keybackup: get: %w", err)
	}
	if r.OwnerID != o.String() || r.Version != v {
		return vault.WrappedKey{}, errors.New("keybackup: get: object does not match its name")
	}
	return vault.WrappedKey{Owner: o, Version: r.Version, KEKID: r.KEKID, Wrapped: r.Wrapped, Created: r.Created}, nil
}

// Versions implements vault.KeyBackup.
func (k *Bucket) Versions(ctx context.Context, o owner.ID) ([]uint32, error) {
	var out []uint32
	it := k.b.List(&blob.ListOptions{Prefix: ownerPrefix(o)})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("keybackup: list: %w", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, ownerPrefix(o)), ".json")
		v, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("keybackup: list: unexpected object %q", obj.Key)
		}
		out = append(out, uint32(v))
	}
}

// Owners lists every owner with at least one backed-up version, for restores (it implements
// vault.KeyringBackups with Versions and Get). Anything under keyring/ that is not an owner's
// folder (a stray object, a name that is not a canonical owner ID) is an error: the restore
// stops before writing anything rather than guess what the bucket holds.
func (k *Bucket) Owners(ctx context.Context) ([]owner.ID, error) {
	var out []owner.ID
	it := k.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("keybackup: list owners: %w", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, prefix), "/")
		id, err := owner.Parse(name)
		if !obj.IsDir || err != nil || id.String() != name {
			return nil, fmt.Errorf("keybackup: list owners: unexpected object %q", obj.Key)
		}
		out = append(out, id)
	}
}

// Delete implements vault.KeyBackup; deleting what is already gone is not an error.
func (k *Bucket) Delete(ctx context.Context, o owner.ID, versions []uint32) error {
	for _, v := range versions {
		if err := k.b.Delete(ctx, key(o, v)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("keybackup: delete: %w", err)
		}
	}
	return nil
}

// DeleteOwner implements vault.KeyBackup.
func (k *Bucket) DeleteOwner(ctx context.Context, o owner.ID) (int, error) {
	versions, err := k.Versions(ctx, o)
	if err != nil {
		return 0, err
	}
	if err := k.Delete(ctx, o, versions); err != nil {
		return 0, err
	}
	return len(versions), nil
}
