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

// File is the development provider: a 32-byte key in a file only the service's user can read.
type File struct {
	aead cipher.AEAD
	id   string
}

// OpenFile reads the root key from path. The file must be a regular file (not a symlink) of
// exactly 32 bytes, with no permission for group or others (0600 or 0400): a key file anyone on
// the machine can read is no root key.
func OpenFile(path string) (*File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("kek: key file %q: path must be absolute", path)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("kek: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("kek: key file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("kek: key file %s: mode %04o gives access to group or others; want 0600", path, perm)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kek: key file: %w", err)
	}
	defer f.Close()
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
