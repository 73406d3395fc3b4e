// Package blobstore is the apps service's object storage, through gocloud.dev/blob: a local
// directory (file://) in development and tests, S3 or an S3-compatible store (s3://) in
// production. It exists to keep the choice of store in one URL and the rest of the service
// on four verbs. Object keys are chosen by the domain and always start with the owner ID.
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"gocloud.dev/blob"
	// The drivers the service accepts; each registers its URL scheme with blob.OpenBucket.
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
)

// ErrNotFound is returned by Get for a missing object.
var ErrNotFound = errors.New("object not found")

// Store is one bucket.
type Store struct {
	bucket *blob.Bucket
}

// Open opens the bucket at url (file:///path or s3://bucket?region=...).
func Open(ctx context.Context, url string) (*Store, error) {
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("blobstore: open: %w", err)
	}
	return &Store{bucket: b}, nil
}

// Close closes the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// Put writes an object (replacing one with the same key).
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := s.bucket.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "application/octet-stream"}); err != nil {
		return fmt.Errorf("blobstore: put: %w", err)
	}
	return nil
}

// Get reads an object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := s.bucket.ReadAll(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("blobstore: get: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: get: %w", err)
	}
	return data, nil
}

// Delete removes an object; a missing one is not an error (deletes are retried).
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("blobstore: delete: %w", err)
	}
	return nil
}

// List returns up to limit keys under prefix.
func (s *Store) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	var keys []string
	for len(keys) < limit {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: list: %w", err)
		}
		if !obj.IsDir {
			keys = append(keys, obj.Key)
		}
	}
	return keys, nil
}
