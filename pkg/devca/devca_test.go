package devca_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/workload"
)

func newCA(tb testing.TB) *devca.CA {
	tb.Helper()
	ca, err := devca.New("test CA", time.Hour)
	require.NoError(tb, err)
	return ca
}

func parseCert(tb testing.TB, certPEM []byte) *x509.Certificate {
	tb.Helper()
	block, _ := pem.Decode(certPEM)
	require.NotNil(tb, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(tb, err)
	return cert
}

func pool(tb testing.TB, caPEM []byte) *x509.CertPool {
	tb.Helper()
	p := x509.NewCertPool()
	require.True(tb, p.AppendCertsFromPEM(caPEM))
	return p
}

func TestNewCA(t *testing.T) {
	ca := newCA(t)
	cert := parseCert(t, ca.CertPEM())
	require.True(t, cert.IsCA)
	require.NotZero(t, cert.KeyUsage&x509.KeyUsageCertSign)
	require.Equal(t, "test CA", cert.Subject.CommonName)
	require.NoError(t, cert.CheckSignatureFrom(cert), "self-signed")
	require.Equal(t, x509.ECDSA, cert.PublicKeyAlgorithm)
	require.WithinDuration(t, time.Now().Add(time.Hour), cert.NotAfter, time.Minute)

	_, err := devca.New("", time.Hour)
	require.Error(t, err)
	_, err = devca.New("x", 0)
	require.Error(t, err)
}

func TestIssue(t *testing.T) {
	ca := newCA(t)
	other := newCA(t)
	apps := workload.Must(workload.DefaultTrustDomain, workload.Apps)
	now := time.Now()

	tests := []struct {
		name    string
		req     devca.IssueRequest
		wantErr bool
		// wantURI is the expected single URI SAN, "" for none.
		wantURI   string
		wantDNS   []string
		usages    []x509.ExtKeyUsage
		badUsages []x509.ExtKeyUsage
		expired   bool
	}{
		{
			name:      "workload",
			req:       devca.IssueRequest{Workload: apps, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}},
			wantURI:   "spiffe://forge.internal/apps",
			wantDNS:   []string{"apps", "localhost"},
			usages:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			badUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		},
		{
			name:    "workload name given by the caller is not repeated",
			req:     devca.IssueRequest{Workload: apps, DNSNames: []string{"apps"}},
			wantURI: "spiffe://forge.internal/apps",
			wantDNS: []string{"apps"},
			usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		},
		{
			name:      "https server",
			req:       devca.IssueRequest{DNSNames: []string{"localhost", "*.apps.localhost"}},
			wantDNS:   []string{"localhost", "*.apps.localhost"},
			usages:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			badUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		{
			name:    "expired",
			req:     devca.IssueRequest{Workload: apps, NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)},
			wantURI: "spiffe://forge.internal/apps",
			wantDNS: []string{"apps"},
			expired: true,
		},
		{name: "no names at all", req: devca.IssueRequest{}, wantErr: true},
		{name: "NotAfter before NotBefore", req: devca.IssueRequest{DNSNames: []string{"x"}, NotBefore: now, NotAfter: now.Add(-time.Second)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.Issue(tt.req)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			_, err = tls.X509KeyPair(certPEM, keyPEM)
			require.NoError(t, err, "the key belongs to the certificate")

			cert := parseCert(t, certPEM)
			require.False(t, cert.IsCA)
			require.Equal(t, tt.wantDNS, cert.DNSNames)
			if tt.wantURI == "" {
				require.Empty(t, cert.URIs)
			} else {
				require.Len(t, cert.URIs, 1)
				require.Equal(t, tt.wantURI, cert.URIs[0].String())
				id, err := workload.FromCertificate(cert)
				require.NoError(t, err)
				require.Equal(t, tt.req.Workload, id)
			}

			_, err = cert.Verify(x509.VerifyOptions{Roots: pool(t, other.CertPEM()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			require.Error(t, err, "another CA does not vouch for it")

			if tt.expired {
				_, err = cert.Verify(x509.VerifyOptions{Roots: pool(t, ca.CertPEM()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
				var invalid x509.CertificateInvalidError
				require.ErrorAs(t, err, &invalid)
				require.Equal(t, x509.Expired, invalid.Reason)
				return
			}
			for _, u := range tt.usages {
				_, err = cert.Verify(x509.VerifyOptions{Roots: pool(t, ca.CertPEM()), KeyUsages: []x509.ExtKeyUsage{u}})
				require.NoError(t, err, "usage %v", u)
			}
			for _, u := range tt.badUsages {
				_, err = cert.Verify(x509.VerifyOptions{Roots: pool(t, ca.CertPEM()), KeyUsages: []x509.ExtKeyUsage{u}})
				require.Error(t, err, "usage %v must not verify", u)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	ca := newCA(t)
	other := newCA(t)
	leafPEM, leafKey, err := ca.Issue(devca.IssueRequest{DNSNames: []string{"localhost"}})
	require.NoError(t, err)

	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr bool
	}{
		{name: "round trip", cert: ca.CertPEM(), key: ca.KeyPEM()},
		{name: "key of another CA", cert: ca.CertPEM(), key: other.KeyPEM(), wantErr: true},
		{name: "leaf is not a CA", cert: leafPEM, key: leafKey, wantErr: true},
		{name: "garbage certificate", cert: []byte("nope"), key: ca.KeyPEM(), wantErr: true},
		{name: "garbage key", cert: ca.CertPEM(), key: []byte("nope"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loaded, err := devca.Load(tt.cert, tt.key)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, ca.CertPEM(), loaded.CertPEM())
			// The loaded CA signs certificates the original's pool accepts.
			certPEM, _, err := loaded.Issue(devca.IssueRequest{DNSNames: []string{"localhost"}})
			require.NoError(t, err)
			_, err = parseCert(t, certPEM).Verify(x509.VerifyOptions{Roots: pool(t, ca.CertPEM()), DNSName: "localhost"})
			require.NoError(t, err)
		})
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	services := []string{workload.Apps, workload.Gateway}
	require.NoError(t, devca.WriteDir(dir, "example.test", services, 2*time.Hour))

	info, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	roots := pool(t, caPEM)

	for _, stem := range []string{"ca", workload.Apps, workload.Gateway, devca.EdgeName} {
		info, err := os.Stat(filepath.Join(dir, stem+"-key.pem"))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "%s key", stem)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 8, "no temporary files are left behind")

	for _, name := range services {
		certPEM, err := os.ReadFile(filepath.Join(dir, name+".pem"))
		require.NoError(t, err)
		keyPEM, err := os.ReadFile(filepath.Join(dir, name+"-key.pem"))
		require.NoError(t, err)
		_, err = tls.X509KeyPair(certPEM, keyPEM)
		require.NoError(t, err)
		cert := parseCert(t, certPEM)
		id, err := workload.FromCertificate(cert)
		require.NoError(t, err)
		require.Equal(t, workload.Must("example.test", name), id)
		require.WithinDuration(t, time.Now().Add(2*time.Hour), cert.NotAfter, time.Minute)
		for _, host := range []string{name, "localhost", "127.0.0.1"} {
			_, err = cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}})
			require.NoError(t, err, "%s as %s", name, host)
		}
	}

	edgePEM, err := os.ReadFile(filepath.Join(dir, "edge.pem"))
	require.NoError(t, err)
	edge := parseCert(t, edgePEM)
	require.Empty(t, edge.URIs, "the browser-facing certificate names no workload")
	for _, host := range []string{"localhost", "console.localhost", "myapp.apps.localhost", "127.0.0.1"} {
		_, err = edge.Verify(x509.VerifyOptions{Roots: roots, DNSName: host})
		require.NoError(t, err, host)
	}
	_, err = edge.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"})
	require.Error(t, err)

	t.Run("a valid CA is reused, leaves are renewed", func(t *testing.T) {
		appsBefore, err := os.ReadFile(filepath.Join(dir, "apps.pem"))
		require.NoError(t, err)
		require.NoError(t, devca.WriteDir(dir, "example.test", services, time.Hour))
		caAfter, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		require.NoError(t, err)
		require.Equal(t, caPEM, caAfter)
		appsAfter, err := os.ReadFile(filepath.Join(dir, "apps.pem"))
		require.NoError(t, err)
		require.NotEqual(t, parseCert(t, appsBefore).SerialNumber, parseCert(t, appsAfter).SerialNumber)
	})

	t.Run("a CA expiring within the hour is replaced", func(t *testing.T) {
		dir := t.TempDir()
		old, err := devca.New("old", 30*time.Minute)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), old.CertPEM(), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ca-key.pem"), old.KeyPEM(), 0o600))
		require.NoError(t, devca.WriteDir(dir, "example.test", services, time.Hour))
		caAfter, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		require.NoError(t, err)
		require.NotEqual(t, old.CertPEM(), caAfter)
		// Leaves chain to the new CA.
		appsPEM, err := os.ReadFile(filepath.Join(dir, "apps.pem"))
		require.NoError(t, err)
		_, err = parseCert(t, appsPEM).Verify(x509.VerifyOptions{Roots: pool(t, caAfter), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		require.NoError(t, err)
	})

	t.Run("leaves never outlive the CA", func(t *testing.T) {
		dir := t.TempDir()
		short, err := devca.New("short", 3*time.Hour)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), short.CertPEM(), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ca-key.pem"), short.KeyPEM(), 0o600))
		require.NoError(t, devca.WriteDir(dir, "example.test", services, 24*time.Hour))
		appsPEM, err := os.ReadFile(filepath.Join(dir, "apps.pem"))
		require.NoError(t, err)
		require.Equal(t, short.Certificate().NotAfter, parseCert(t, appsPEM).NotAfter)
	})
}

func TestWriteDirRefuses(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(tb testing.TB, dir string)
		trust    string
		services []string
	}{
		{name: "service named like the CA", trust: "example.test", services: []string{"ca"}},
		{name: "service named like the edge", trust: "example.test", services: []string{devca.EdgeName}},
		{name: "invalid service name", trust: "example.test", services: []string{"Not/Valid"}},
		{name: "invalid trust domain", trust: "Bad Domain", services: []string{"apps"}},
		{
			name: "unreadable existing CA", trust: "example.test", services: []string{"apps"},
			setup: func(tb testing.TB, dir string) {
				tb.Helper()
				require.NoError(tb, os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("garbage"), 0o644))
				require.NoError(tb, os.WriteFile(filepath.Join(dir, "ca-key.pem"), []byte("garbage"), 0o600))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			require.Error(t, devca.WriteDir(dir, tt.trust, tt.services, time.Hour))
		})
	}
}
