package lifecycle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/forgeapps/backbone/pkg/owner"
)

// StoreReport is what one store reported for a purge.
type StoreReport struct {
	Store                string   `json:"store"`
	RowsDeleted          int64    `json:"rows_deleted"`
	ObjectsDeleted       int64    `json:"objects_deleted"`
	KeyVersionsDestroyed []uint32 `json:"key_versions_destroyed,omitempty"`
}

// CertificatePayload is what a deletion certificate attests. It names the tenant only by the
// SHA-256 of its owner ID: the certificate can be shown to anyone.
type CertificatePayload struct {
	Version       int           `json:"version"`
	DeletionID    string        `json:"deletion_id"`
	OwnerIDSHA256 string        `json:"owner_id_sha256"`
	Region        string        `json:"region"`
	RequestTime   time.Time     `json:"request_time"`
	PurgeDueTime  time.Time     `json:"purge_due_time"`
	CompleteTime  time.Time     `json:"complete_time"`
	Stores        []StoreReport `json:"stores"`
	// KeyVersionsDestroyed are the tenant key versions shredded (live keyring and its backups).
	KeyVersionsDestroyed []uint32 `json:"key_versions_destroyed"`
	// BackupsExpireBy is when the last database backup that may still hold the tenant's rows
	// (as ciphertext under the destroyed keys) is deleted: backups are kept BackupRetention.
	BackupsExpireBy time.Time `json:"backups_expire_by"`
	KeyID           string    `json:"key_id"`
}

// OwnerHash is the certificate's name for a tenant.
func OwnerHash(id owner.ID) string {
	sum := sha256.Sum256([]byte(id.String()))
	return hex.EncodeToString(sum[:])
}

// Signer signs deletion certificates with an Ed25519 key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner wraps an Ed25519 private key.
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("certificate signer: not an Ed25519 private key")
	}
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// KeyID names a verification key: "ed25519:" and the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// KeyID names the signing key.
func (s *Signer) KeyID() string { return s.id }

// PublicKey is the verification key.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Certificate is a signed payload.
type Certificate struct {
	Payload   []byte
	Signature []byte
	KeyID     string
}

// Sign builds the certificate: stores sorted by name, key versions sorted, times in UTC,
// encoded as JSON (the struct's field order) and signed.
func (s *Signer) Sign(p CertificatePayload) (Certificate, error) {
	p.Version = 1
	p.KeyID = s.id
	p.Stores = slices.Clone(p.Stores)
	slices.SortFunc(p.Stores, func(a, b StoreReport) int {
		switch {
		case a.Store < b.Store:
			return -1
		case a.Store > b.Store:
			return 1
		}
		return 0
	})
	p.KeyVersionsDestroyed = slices.Clone(p.KeyVersionsDestroyed)
	slices.Sort(p.KeyVersionsDestroyed)
	if p.KeyVersionsDestroyed == nil {
		p.KeyVersionsDestroyed = []uint32{}
	}
	for _, t := range []*time.Time{&p.RequestTime, &p.PurgeDueTime, &p.CompleteTime, &p.BackupsExpireBy} {
		*t = t.UTC()
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return Certificate{}, fmt.Errorf("certificate: %w", err)
	}
	return Certificate{Payload: payload, Signature: ed25519.Sign(s.key, payload), KeyID: s.id}, nil
}

// ErrBadSignature is returned when a certificate does not verify.
var ErrBadSignature = errors.New("certificate: signature does not verify")

// Verify checks a certificate against a public key and decodes its payload.
func Verify(pub ed25519.PublicKey, c Certificate) (CertificatePayload, error) {
	if c.KeyID != KeyID(pub) || !ed25519.Verify(pub, c.Payload, c.Signature) {
		return CertificatePayload{}, ErrBadSignature
	}
	var p CertificatePayload
	if err := json.Unmarshal(c.Payload, &p); err != nil {
		return CertificatePayload{}, fmt.Errorf("certificate: payload: %w", err)
	}
	if p.KeyID != c.KeyID {
		return CertificatePayload{}, ErrBadSignature
	}
	return p, nil
}
