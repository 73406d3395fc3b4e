// Package kek holds the region's root key (the key-encryption key) behind one small interface,
// so that tenant data keys are only ever stored wrapped by it, and so that the development key
// file and a production KMS are interchangeable without touching the vault's logic.
//
// Only secrets-vault opens a Provider: no other service of the suite has the configuration or
// the file to do so.
//
// # Plugging in a KMS
//
// A cloud KMS (AWS KMS, Google Cloud KMS) or Vault transit provider implements Provider by
// calling the service's encrypt and decrypt operations on the data key, passing aad as the
// encryption context (AWS: EncryptionContext; GCP: additional authenticated data; Vault
// transit: context with derived keys), and returning the key's stable identifier (ARN, resource
// name, transit key name) as KeyID. It registers its URL scheme in Open. The data key never
// leaves the vault process in plaintext except to the KMS over TLS; the KEK never leaves the KMS.
// This binary ships only the file provider: other schemes are refused at start.
package kek

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
)

// Provider wraps and unwraps tenant data keys with the region's root key.
type Provider interface {
	// KeyID names the root key (never derived in a way that reveals it), stored next to every
	// wrapped key so a key wrapped under another root key is recognised, not mis-opened.
	KeyID() string
	// Wrap encrypts a data key; aad binds the result to what it is for (owner and version).
	Wrap(ctx context.Context, dataKey, aad []byte) ([]byte, error)
	// Unwrap decrypts a wrapped data key; it fails if aad differs from Wrap's.
	Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error)
}

// KeySize is the size of the root key and of every data key: AES-256.
const KeySize = 32

// ErrUnwrap is returned when a wrapped key does not open (another root key, another owner or
// version, or tampering).
var ErrUnwrap = errors.New("kek: wrapped key does not open")

// Open returns the provider named by rawURL. Only file:///abs/path is built in.
func Open(rawURL string) (Provider, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("kek: provider URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, errors.New("kek: file provider: want file:///absolute/path")
		}
		return OpenFile(u.Path)
	case "":
		return nil, errors.New("kek: provider URL has no scheme (want file:///absolute/path)")
	}
	return nil, fmt.Errorf("kek: provider scheme %q is not built into this binary (see the kek package doc to plug one in)", u.Scheme)
}

// File is the file provider: a 32-byte key in a file only the service's user (and group) can
// read: a local file in development, a mounted Secret in Kubernetes.
type File struct {
	aead cipher.AEAD
	id   string
}

// keyFilePerm is every permission a key file may have: read and write for its owner, read
// for its group. Kubernetes mounts a Secret with the pod's fsGroup and gives that group read
// access (defaultMode 0440); nobody else may read it, and nobody but the owner may change it.
const keyFilePerm os.FileMode = 0o640

// NewKeyFile writes a fresh random root key to path, readable and writable by its owner only
// (0600), for a development machine or a test. It never replaces an existing file: a root
// key overwritten is every tenant's data lost.
func NewKeyFile(path string) error {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("kek: new key file: %w", err)
	}
	defer clear(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("kek: new key file: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		_ = f.Close()
		return fmt.Errorf("kek: new key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("kek: new key file: %w", err)
	}
	return nil
}

// OpenFile reads the root key from path. The path must be absolute and name a regular file,
// directly or through symbolic links (a Kubernetes Secret volume mounts each key as a link
// into a versioned directory), of exactly 32 bytes, that no one but its owner and group can
// read and no one but its owner can write (0400, 0440, 0600, 0640): a key file anyone on the
// machine can read or replace is no root key.
func OpenFile(path string) (*File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("kek: key file %q: path must be absolute", path)
	}
	// Checked before opening, so a link to a FIFO or a device is refused without blocking on
	// it; checked again on the open file, which is what is read.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("kek: key file: %w", err)
	}
	if err := checkKeyFile(path, fi); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kek: key file: %w", err)
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kek: key file: %w", err)
	}
	if !os.SameFile(fi, opened) {
		return nil, fmt.Errorf("kek: key file %s: replaced while being opened", path)
	}
	if err := checkKeyFile(path, opened); err != nil {
		return nil, err
	}
	key, err := io.ReadAll(io.LimitReader(f, KeySize+1))
	if err != nil {
		return nil, fmt.Errorf("kek: key file: %w", err)
	}
	defer clear(key)
	if len(key) != KeySize {
		return nil, fmt.Errorf("kek: key file %s: want exactly %d bytes", path, KeySize)
	}
	return newFile(key)
}

// checkKeyFile refuses anything but a regular file within keyFilePerm.
func checkKeyFile(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("kek: key file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&^keyFilePerm != 0 {
		return fmt.Errorf("kek: key file %s: mode %04o gives access beyond its owner (read, write) and group (read); want 0400, 0440, 0600 or 0640", path, perm)
	}
	return nil
}

func newFile(key []byte) (*File, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	// The ID is a domain-separated hash of the key: stable, and it reveals nothing usable
	// about a 256-bit random key.
	sum := sha256.Sum256(append([]byte("forge.vault.kek-id\x00"), key...))
	return &File{aead: aead, id: "file:" + hex.EncodeToString(sum[:8])}, nil
}

// KeyID implements Provider.
func (f *File) KeyID() string { return f.id }

// Wrap implements Provider: AES-256-GCM, random 96-bit nonce, output nonce||sealed.
func (f *File) Wrap(_ context.Context, dataKey, aad []byte) ([]byte, error) {
	if len(dataKey) != KeySize {
		return nil, fmt.Errorf("kek: wrap: data key of %d bytes, want %d", len(dataKey), KeySize)
	}
	out := make([]byte, f.aead.NonceSize(), f.aead.NonceSize()+len(dataKey)+f.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("kek: wrap: nonce: %w", err)
	}
	return f.aead.Seal(out, out, dataKey, aad), nil
}

// Unwrap implements Provider.
func (f *File) Unwrap(_ context.Context, wrapped, aad []byte) ([]byte, error) {
	n := f.aead.NonceSize()
	if len(wrapped) != n+KeySize+f.aead.Overhead() {
		return nil, ErrUnwrap
	}
	key, err := f.aead.Open(nil, wrapped[:n], wrapped[n:], aad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return key, nil
}
