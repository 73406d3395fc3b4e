package archive

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// ManifestName is the manifest's path inside the zip; it is written last.
const ManifestName = "manifest.json"

// FormatVersion names the archive layout in the manifest.
const FormatVersion = "forge-export/1"

// ManifestEntry describes one file of the archive.
type ManifestEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest says what an archive holds.
type Manifest struct {
	Format     string           `json:"format"`
	ExportID   string           `json:"export_id"`
	OwnerID    string           `json:"owner_id"`
	CreateTime time.Time        `json:"create_time"`
	Counts     map[string]int64 `json:"counts"`
	Files      []ManifestEntry  `json:"files"`
}

// Builder writes a zip whose files are streamed (stored, not deflated: most tenant content,
// images and bundles, does not shrink, and the archive is sealed right after anyway) and
// checksummed as they go. Memory holds one manifest entry per file, never file content.
type Builder struct {
	zw       *zip.Writer
	manifest Manifest
	seen     map[string]bool
	closed   bool
	modTime  time.Time
}

// NewBuilder starts a zip on w.
func NewBuilder(w io.Writer, exportID, ownerID string, created time.Time) *Builder {
	return &Builder{
		zw:      zip.NewWriter(w),
		seen:    map[string]bool{},
		modTime: created.UTC(),
		manifest: Manifest{
			Format: FormatVersion, ExportID: exportID, OwnerID: ownerID, CreateTime: created.UTC(),
			Counts: map[string]int64{},
		},
	}
}

// ErrBadPath is returned for a path that could escape the archive's root when unpacked.
var ErrBadPath = errors.New("archive: unsafe path")

// CleanPath checks an archive path: relative, slash-separated, no "." or ".." element, no
// backslash or NUL, at most 1024 bytes.
func CleanPath(p string) (string, error) {
	if p == "" || len(p) > 1024 || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return "", fmt.Errorf("%w: %q", ErrBadPath, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fmt.Errorf("%w: %q", ErrBadPath, p)
		}
	}
	if path.Clean(p) != p {
		return "", fmt.Errorf("%w: %q", ErrBadPath, p)
	}
	return p, nil
}

// Add streams r into the archive as name and records its size and SHA-256.
func (b *Builder) Add(name string, r io.Reader) error {
	fw, err := b.Create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(fw, r); err != nil {
		return fmt.Errorf("archive: %s: %w", name, err)
	}
	return fw.Close()
}

// FileWriter is one file being written; Close records it in the manifest. Only one file can
// be open at a time (a zip is written front to back).
type FileWriter struct {
	b    *Builder
	name string
	w    io.Writer
	h    hash.Hash
	n    int64
}

// Write implements io.Writer.
func (f *FileWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.h.Write(p[:n])
	f.n += int64(n)
	return n, err
}

// Close records the file in the manifest.
func (f *FileWriter) Close() error {
	f.b.manifest.Files = append(f.b.manifest.Files, ManifestEntry{Path: f.name, Size: f.n, SHA256: hex.EncodeToString(f.h.Sum(nil))})
	return nil
}

// Create starts a file; write its content, then Close it before the next one.
func (b *Builder) Create(name string) (*FileWriter, error) {
	if b.closed {
		return nil, errors.New("archive: add after close")
	}
	name, err := CleanPath(name)
	if err != nil {
		return nil, err
	}
	if name == ManifestName || b.seen[name] {
		return nil, fmt.Errorf("archive: %q added twice", name)
	}
	b.seen[name] = true
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: b.modTime})
	if err != nil {
		return nil, fmt.Errorf("archive: %s: %w", name, err)
	}
	return &FileWriter{b: b, name: name, w: w, h: sha256.New()}, nil
}

// AddBytes adds a small file held in memory.
func (b *Builder) AddBytes(name string, content []byte) error {
	return b.Add(name, bytes.NewReader(content))
}

// Count adds n to the manifest's count of kind ("apps", "prompts", ...).
func (b *Builder) Count(kind string, n int64) { b.manifest.Counts[kind] += n }

// Close writes manifest.json and the zip's central directory.
func (b *Builder) Close() (Manifest, error) {
	if b.closed {
		return b.manifest, nil
	}
	b.closed = true
	m := b.manifest
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	if m.Files == nil {
		m.Files = []ManifestEntry{}
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("archive: manifest: %w", err)
	}
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: ManifestName, Method: zip.Deflate, Modified: b.modTime})
	if err != nil {
		return Manifest{}, fmt.Errorf("archive: manifest: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return Manifest{}, fmt.Errorf("archive: manifest: %w", err)
	}
	if err := b.zw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("archive: close zip: %w", err)
	}
	return m, nil
}
