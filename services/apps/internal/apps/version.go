package apps

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
)

// File is one file of a version.
type File struct {
	Path        string
	ContentType string
	Content     []byte
	Size        int64
}

// Version is a version's metadata and file list.
type Version struct {
	Version int32
	Author  string
	Created time.Time
	Files   []File
}

// CreateVersion stores a new immutable version and makes it current (owner, editors, the
// builder). Every check runs before anything is written; if storing fails, the objects
// already written are deleted.
func (s *Service) CreateVersion(ctx context.Context, c Caller, appID uuid.UUID, files []File) (Version, error) {
	if len(files) == 0 {
		return Version{}, fault.InvalidField("files", "at least one file")
	}
	seen := map[string]bool{}
	total := 0
	checked := make([]File, len(files))
	for i, f := range files {
		t, err := checkVersionFile(i, f.Path, f.ContentType, f.Content)
		if err != nil {
			return Version{}, err
		}
		if seen[f.Path] {
			return Version{}, fault.InvalidField("files["+itoa(i)+"].path", "appears twice")
		}
		seen[f.Path] = true
		total += len(f.Content)
		checked[i] = File{Path: f.Path, ContentType: t, Content: f.Content, Size: int64(len(f.Content))}
	}
	if total > MaxVersionBytes {
		return Version{}, fault.InvalidField("files", "at most 12 MiB in all")
	}
	a, err := s.resolveWriter(ctx, c, appID)
	if err != nil {
		return Version{}, err
	}
	v := Version{Author: a.author(), Created: s.clock()}
	var written []string
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		// The row lock serialises versions of one app; the vault and object writes happen
		// under it so a version number is never used twice.
		rec, err := tx.App(ctx, appID, true)
		if err != nil {
			return err
		}
		v.Version = rec.CurrentVersion + 1
		items := make([]CryptoItem, len(checked))
		for i, f := range checked {
			items[i] = CryptoItem{Binding: versionBinding(appID, v.Version, f.Path), Data: f.Content}
		}
		sealed, ver, err := s.crypto.SealObjects(ctx, a.Owner, PurposeAppContent, items)
		if err != nil {
			return fmt.Errorf("seal version: %w", err)
		}
		vr := VersionRecord{AppID: appID, Version: v.Version, Author: v.Author, Created: v.Created}
		for i, f := range checked {
			key := versionFileKey(a.Owner, appID, v.Version, f.Path)
			if err := s.blobs.Put(ctx, key, sealed[i].Data); err != nil {
				return fmt.Errorf("store version file: %w", err)
			}
			written = append(written, key)
			vr.Files = append(vr.Files, FileRecord{Path: f.Path, ContentType: f.ContentType, Size: f.Size, ObjectKey: key,
				WrappedKey: sealed[i].WrappedKey, KeyVersion: ver})
		}
		if err := tx.InsertVersion(ctx, vr); err != nil {
			return err
		}
		rec.CurrentVersion, rec.Updated = v.Version, v.Created
		if err := tx.UpdateApp(ctx, rec); err != nil {
			return err
		}
		return tx.AccessChanged(ctx, appID, AccessVersionChanged)
	})
	if err != nil {
		s.deleteObjects(ctx, written)
		return Version{}, ensureFound(err)
	}
	for _, f := range checked {
		v.Files = append(v.Files, File{Path: f.Path, ContentType: f.ContentType, Size: f.Size})
	}
	return v, nil
}

// ListVersions lists an app's versions with their file lists (no content).
func (s *Service) ListVersions(ctx context.Context, c Caller, appID uuid.UUID) ([]Version, error) {
	a, err := s.resolve(ctx, c, appID)
	if err != nil {
		return nil, err
	}
	var recs []VersionRecord
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if _, err := tx.App(ctx, appID, false); err != nil {
			return err
		}
		recs, err = tx.Versions(ctx, appID)
		return err
	})
	if err != nil {
		return nil, ensureFound(err)
	}
	out := make([]Version, len(recs))
	for i, r := range recs {
		out[i] = Version{Version: r.Version, Author: r.Author, Created: r.Created}
		for _, f := range r.Files {
			out[i].Files = append(out[i].Files, File{Path: f.Path, ContentType: f.ContentType, Size: f.Size})
		}
	}
	return out, nil
}

// GetVersionFile returns one file of a version with its content.
func (s *Service) GetVersionFile(ctx context.Context, c Caller, appID uuid.UUID, version int32, path string) (File, error) {
	a, err := s.resolve(ctx, c, appID)
	if err != nil {
		return File{}, err
	}
	var rec FileRecord
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		rec, err = tx.VersionFile(ctx, appID, version, path)
		return err
	})
	if err != nil {
		return File{}, err
	}
	files, err := s.openFiles(ctx, a, PurposeAppContent, version, []FileRecord{rec})
	if err != nil {
		return File{}, err
	}
	return files[0], nil
}

// openFiles reads and decrypts version files of one app version (one vault call, for the
// data keys, made while the objects are read).
func (s *Service) openFiles(ctx context.Context, a Access, p Purpose, version int32, recs []FileRecord) ([]File, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	items := make([]ObjectItem, len(recs))
	for i, r := range recs {
		items[i] = ObjectItem{Binding: versionBinding(a.AppID, version, r.Path), WrappedKey: r.WrappedKey}
	}
	pts, err := s.crypto.OpenObjects(ctx, a.Owner, p, items, func(ctx context.Context, i int) ([]byte, error) {
		ct, err := s.blobs.Get(ctx, recs[i].ObjectKey)
		if err != nil {
			return nil, fmt.Errorf("read version file object: %w", err)
		}
		return ct, nil
	})
	if err != nil {
		return nil, fmt.Errorf("open version files: %w", err)
	}
	out := make([]File, len(recs))
	for i, r := range recs {
		out[i] = File{Path: r.Path, ContentType: r.ContentType, Content: pts[i], Size: r.Size}
	}
	return out, nil
}
