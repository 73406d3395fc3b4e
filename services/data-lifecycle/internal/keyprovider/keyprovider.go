// Package keyprovider opens the keys data-lifecycle holds itself: the backup key-encryption
// key (from the region's key provider, FORGE_KEY_PROVIDER, used under its own associated data
// so it can never open what the vault wrapped) and the Ed25519 key that signs deletion
// certificates. Tenant keys are never here: only secrets-vault holds them.
//
// Only the file provider (file:///absolute/path, a 32-byte key no other user can read) is built in, as in
// secrets-vault. A KMS provider implements Wrapper by calling the KMS's encrypt and decrypt
// with aad as the encryption context, and registers its scheme in Open; IAM then limits the
// backup job's role to that context.
package keyprovider

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
)

// Wrapper wraps and unwraps data keys under a key-encryption key.
type Wrapper interface {
	KeyID() string
	Wrap(ctx context.Context, dataKey, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error)
}

// KeySize is the size of the key-encryption key and of data keys (AES-256).
const KeySize = 32

// ErrUnwrap is returned when a wrapped key does not open.
var ErrUnwrap = errors.New("keyprovider: wrapped key does not open")

// Open returns the provider named by rawURL.
func Open(rawURL string) (Wrapper, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("keyprovider: URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || u.RawQuery != "" || u.User != nil {
			return nil, errors.New("keyprovider: file provider: want file:///absolute/path")
		}
		key, err := readSecretFile(u.Path, KeySize+1)
		if err != nil {
			return nil, err
		}
		defer clear(key)
		if len(key) != KeySize {
			return nil, fmt.Errorf("keyprovider: key file %s: want exactly %d bytes", u.Path, KeySize)
		}
		return NewStatic(key)
	case "":
		return nil, errors.New("keyprovider: URL has no scheme (want file:///absolute/path)")
	}
	return nil, fmt.Errorf("keyprovider: scheme %q is not built into this binary", u.Scheme)
}

// readSecretFile reads a regular file no other user can read. Symbolic links are followed
// (Kubernetes mounts Secret keys as links into a versioned directory) and the group may read
// it (the pod's fsGroup); anyone else may not.
func readSecretFile(path string, limit int64) ([]byte, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("keyprovider: %q: path must be absolute", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keyprovider: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyprovider: %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("keyprovider: %s: mode %04o gives access to other users; want 0600 or 0440", path, fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyprovider: %w", err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// Static wraps with an AES-256-GCM key held in memory.
type Static struct {
	aead cipher.AEAD
	id   string
}

// NewStatic builds a wrapper from a 32-byte key.
func NewStatic(key []byte) (*Static, error) {
	if len(key) != KeySize {
		return nil, errors.New("keyprovider: want a 32-byte key")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("forge.lifecycle.kek-id\x00"), key...))
	return &Static{aead: aead, id: "file:" + hex.EncodeToString(sum[:8])}, nil
}

// KeyID implements Wrapper.
func (s *Static) KeyID() string { return s.id }

// Wrap implements Wrapper: nonce || AES-256-GCM(dataKey, aad).
func (s *Static) Wrap(_ context.Context, dataKey, aad []byte) ([]byte, error) {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(dataKey)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out, dataKey, aad), nil
}

// Unwrap implements Wrapper.
func (s *Static) Unwrap(_ context.Context, wrapped, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(wrapped) < n+s.aead.Overhead() {
		return nil, ErrUnwrap
	}
	key, err := s.aead.Open(nil, wrapped[:n], wrapped[n:], aad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return key, nil
}

// LoadSigningKey reads an Ed25519 private key (PEM, PKCS #8) from a file only its owner can read.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := readSecretFile(path, 64<<10)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("keyprovider: %s: want a PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keyprovider: %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("keyprovider: %s: not an Ed25519 key", path)
	}
	return ek, nil
}

// WriteSigningKey creates a new Ed25519 key file (mode 0600) for development and tests.
func WriteSigningKey(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pub, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
