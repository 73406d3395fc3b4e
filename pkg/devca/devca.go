// Package devca is the development certificate authority of the suite. It mints the CA, the
// workload certificates (one SPIFFE ID each, for mTLS between services) and the browser-facing
// HTTPS certificates that a local stack and the tests need, so that no test and no local run
// ever falls back to plaintext or to skipping verification.
//
// It is for development and tests only: keys live in files next to the certificates and the
// CA key is never protected. Production certificates come from the cluster's issuer.
package devca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/forgeapps/backbone/pkg/workload"
)

// DefaultValidity is the lifetime of development leaf certificates: short, so that rotation
// is exercised every day rather than discovered in production.
const DefaultValidity = 24 * time.Hour

// DefaultCommonName names the CA that WriteDir creates.
const DefaultCommonName = "forge development CA"

// caMinValidity is the lifetime of a CA created by WriteDir. It outlives many rounds of leaf
// rotation so that a developer who imported ca.pem into a browser keeps a working trust.
const caMinValidity = 90 * 24 * time.Hour

// caReuseMargin is how long an existing CA must still be valid for WriteDir to keep it.
const caReuseMargin = time.Hour

// clockSkew backdates NotBefore so that a peer whose clock is slightly behind still accepts
// a certificate issued a moment ago.
const clockSkew = time.Minute

// EdgeName is the file stem of the browser-facing HTTPS certificate WriteDir writes.
const EdgeName = "edge"

// EdgeDNSNames are the names the edge certificate covers: the gateway and console on
// localhost and every app origin under apps.localhost (Chromium resolves *.localhost to
// loopback).
func EdgeDNSNames() []string {
	return []string{"localhost", "*.localhost", "*.apps.localhost"}
}

// CA is a certificate authority: its self-signed certificate and its private key.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// New creates a self-signed ECDSA P-256 CA valid from now (minus a minute of skew) for
// validity.
func New(commonName string, validity time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("devca: empty common name")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("devca: validity %v must be positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devca: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"forge development"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// No intermediates in development: the CA signs leaves only.
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devca: sign CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return Load(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
}

// Load reads a CA from its PEM certificate and PEM (PKCS#8 or SEC 1) ECDSA key. The
// certificate must be a CA and the key must be its key.
func Load(certPEM, keyPEM []byte) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("devca: CA certificate: no CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devca: parse CA certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("devca: certificate is not a CA")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("devca: CA key does not match CA certificate")
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		keyPEM:  keyPEM,
	}, nil
}

// CertPEM returns the CA certificate in PEM: the trust bundle peers verify against.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// KeyPEM returns the CA private key in PEM.
func (ca *CA) KeyPEM() []byte { return append([]byte(nil), ca.keyPEM...) }

// Certificate returns the parsed CA certificate, for building a pool in tests.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// IssueRequest describes a leaf certificate.
type IssueRequest struct {
	// Workload, when set, becomes the only URI SAN and makes the certificate a workload
	// certificate (server and client auth). Its name is always added as a DNS SAN, because
	// mtls clients verify a server against the DNS name of the workload they expect.
	// The zero value issues a plain HTTPS server certificate.
	Workload workload.ID
	DNSNames []string
	IPs      []net.IP
	// NotBefore defaults to now minus a minute, NotAfter to now plus DefaultValidity.
	// Tests set both to issue certificates that are expired or not yet valid.
	NotBefore time.Time
	NotAfter  time.Time
}

// Issue signs a new leaf certificate with a fresh ECDSA P-256 key and returns both in PEM.
func (ca *CA) Issue(req IssueRequest) (certPEM, keyPEM []byte, err error) {
	dnsNames := append([]string(nil), req.DNSNames...)
	if !req.Workload.IsZero() && !slices.Contains(dnsNames, req.Workload.Name()) {
		dnsNames = append([]string{req.Workload.Name()}, dnsNames...)
	}
	if len(dnsNames) == 0 && len(req.IPs) == 0 {
		return nil, nil, errors.New("devca: issue: a certificate needs a workload, a DNS name or an IP")
	}
	now := time.Now()
	notBefore, notAfter := req.NotBefore, req.NotAfter
	if notBefore.IsZero() {
		notBefore = now.Add(-clockSkew)
	}
	if notAfter.IsZero() {
		notAfter = now.Add(DefaultValidity)
	}
	if !notAfter.After(notBefore) {
		return nil, nil, fmt.Errorf("devca: issue: NotAfter %v is not after NotBefore %v", notAfter, notBefore)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: generate leaf key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		DNSNames:              dnsNames,
		IPAddresses:           req.IPs,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(dnsNames) > 0 {
		tmpl.Subject.CommonName = dnsNames[0]
	}
	if !req.Workload.IsZero() {
		// A workload certificate serves its own gRPC endpoint and calls others with the
		// same identity, so it carries both usages.
		tmpl.URIs = []*url.URL{req.Workload.URL()}
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: sign leaf certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// WriteDir writes a development certificate set into dir: ca.pem and ca-key.pem (kept when
// they hold a CA still valid for more than an hour, created otherwise), <service>.pem and
// <service>-key.pem for each service (SPIFFE ID spiffe://<trustDomain>/<service>, DNS names
// <service> and localhost, IP 127.0.0.1), and edge.pem and edge-key.pem, the HTTPS
// certificate for the browser-facing servers. Leaves live for validity, never beyond the CA.
//
// Files are replaced atomically, so a running service that re-reads them never sees half a
// file. Private keys are 0600 and dir is 0700.
func WriteDir(dir, trustDomain string, services []string, validity time.Duration) error {
	if validity <= 0 {
		return fmt.Errorf("devca: validity %v must be positive", validity)
	}
	ids := make([]workload.ID, 0, len(services))
	for _, name := range services {
		if name == "ca" || name == EdgeName {
			return fmt.Errorf("devca: service name %q collides with a file WriteDir writes", name)
		}
		id, err := workload.New(trustDomain, name)
		if err != nil {
			return fmt.Errorf("devca: %w", err)
		}
		ids = append(ids, id)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devca: create %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone; the folder holds private keys.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("devca: chmod %s: %w", dir, err)
	}
	ca, err := loadOrCreateCA(dir, validity)
	if err != nil {
		return err
	}

	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, id := range ids {
		certPEM, keyPEM, err := ca.Issue(IssueRequest{
			Workload: id, DNSNames: []string{"localhost"}, IPs: loopback,
			NotBefore: now.Add(-clockSkew), NotAfter: notAfter,
		})
		if err != nil {
			return fmt.Errorf("devca: issue %s: %w", id, err)
		}
		if err := writePair(dir, id.Name(), certPEM, keyPEM); err != nil {
			return err
		}
	}
	certPEM, keyPEM, err := ca.Issue(IssueRequest{
		DNSNames: EdgeDNSNames(), IPs: loopback,
		NotBefore: now.Add(-clockSkew), NotAfter: notAfter,
	})
	if err != nil {
		return fmt.Errorf("devca: issue edge certificate: %w", err)
	}
	return writePair(dir, EdgeName, certPEM, keyPEM)
}

// loadOrCreateCA keeps the CA in dir when it is valid for more than caReuseMargin, so that
// regenerating leaves does not invalidate a CA a developer already trusts. A CA file that
// exists but cannot be read is an error, never silently replaced.
func loadOrCreateCA(dir string, leafValidity time.Duration) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := Load(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("devca: existing CA in %s (delete it to start over): %w", dir, err)
		}
		now := time.Now()
		if !now.Before(ca.cert.NotBefore) && now.Add(caReuseMargin).Before(ca.cert.NotAfter) {
			return ca, nil
		}
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
	case certErr != nil && !errors.Is(certErr, os.ErrNotExist):
		return nil, fmt.Errorf("devca: read CA certificate: %w", certErr)
	case keyErr != nil && !errors.Is(keyErr, os.ErrNotExist):
		return nil, fmt.Errorf("devca: read CA key: %w", keyErr)
	}
	ca, err := New(DefaultCommonName, max(caMinValidity, leafValidity))
	if err != nil {
		return nil, err
	}
	// Key first: a reader that sees the new certificate finds its key already in place.
	if err := writeFileAtomic(keyPath, ca.keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certPath, ca.certPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

func writePair(dir, stem string, certPEM, keyPEM []byte) error {
	if err := writeFileAtomic(filepath.Join(dir, stem+"-key.pem"), keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, stem+".pem"), certPEM, 0o644)
}

// writeFileAtomic writes to a temporary file in the same directory and renames it over path,
// so readers see either the old or the new content. The temporary file is created 0600, so a
// key is never readable by others, not even for a moment.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) //nolint:errcheck // best effort; gone after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close() //nolint:errcheck // the write error is the one to report
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close() //nolint:errcheck // the chmod error is the one to report
		return fmt.Errorf("devca: chmod %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("devca: write %s: %w", path, err)
	}
	return nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("devca: serial number: %w", err)
	}
	// Zero is not a valid serial; the chance is negligible but the fix is free.
	return serial.Add(serial, big.NewInt(1)), nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("devca: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("devca: CA key: no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("devca: parse CA key: %w", err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("devca: CA key is %T, want ECDSA", k)
		}
		return ec, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("devca: parse CA key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("devca: CA key: unexpected PEM block %q", block.Type)
	}
}
