package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/workload"
)

// TestRotationWithoutRestart rotates the whole CA under a running server and a long-lived
// client credential: new connections pick up the new certificates and trust bundles, and the
// server never restarts.
func TestRotationWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := newCA(t), newCA(t)

	server1 := issueWorkload(t, ca1, appsID)
	serverFiles := writeFiles(t, dir, "apps", server1, ca1.CertPEM())
	clock := newFakeClock()
	logs := &syncBuffer{}
	server, err := mtls.NewSource(serverFiles, trustDomain, slog.New(slog.NewJSONHandler(logs, nil)),
		mtls.WithClock(clock.Now), mtls.WithCheckInterval(time.Second))
	require.NoError(t, err)

	clientFiles := writeFiles(t, dir, "gateway", issueWorkload(t, ca1, gatewayID), ca1.CertPEM())
	client, err := mtls.NewSource(clientFiles, trustDomain, nil)
	require.NoError(t, err)
	// One credential for the whole test, as a long-lived grpc.ClientConn would hold.
	creds := client.ClientCredentials(appsID)

	ts := startServer(t, server.ServerCredentials())
	leaf, err := check(t, ts.addr, creds)
	require.NoError(t, err)
	require.Equal(t, serialOf(t, server1), leaf.SerialNumber)

	// Step 1: the server moves to a certificate from CA2 and trusts both CAs.
	server2 := issueWorkload(t, ca2, appsID)
	writeFiles(t, dir, "apps", server2, ca1.CertPEM(), ca2.CertPEM())

	leaf, err = check(t, ts.addr, creds)
	require.NoError(t, err)
	require.Equal(t, serialOf(t, server1), leaf.SerialNumber, "inside the check interval the files are not looked at")

	clock.Advance(time.Second)
	_, err = check(t, ts.addr, creds)
	require.ErrorContains(t, err, "unknown authority",
		"the server now presents the CA2 certificate, which the client does not trust yet")
	require.Equal(t, 1, strings.Count(logs.String(), "mtls: certificate reloaded"))

	clock.Advance(time.Second)
	_, err = check(t, ts.addr, creds)
	require.Error(t, err)
	require.Equal(t, 1, strings.Count(logs.String(), "mtls: certificate reloaded"), "unchanged files are not reloaded")

	// The client's bundle rotates; the same credential verifies against the new bundle.
	writeFiles(t, dir, "gateway", issueWorkload(t, ca1, gatewayID), ca1.CertPEM(), ca2.CertPEM())
	require.NoError(t, client.Reload())
	leaf, err = check(t, ts.addr, creds)
	require.NoError(t, err)
	require.Equal(t, serialOf(t, server2), leaf.SerialNumber, "a new connection sees the rotated certificate")

	// Step 2: the server drops CA1 from its bundle; the client's CA1 certificate is refused
	// until the client rotates too.
	writeFiles(t, dir, "apps", server2, ca2.CertPEM())
	clock.Advance(time.Second)
	ts.forgetFailures() // the client's refusal in step 1 was reported too
	_, err = check(t, ts.addr, creds)
	require.Error(t, err)
	require.ErrorContains(t, ts.handshakeFailure(t), "unknown authority")

	client2 := issueWorkload(t, ca2, gatewayID)
	writeFiles(t, dir, "gateway", client2, ca2.CertPEM())
	require.NoError(t, client.Reload())
	leaf, err = check(t, ts.addr, creds)
	require.NoError(t, err)
	require.Equal(t, serialOf(t, server2), leaf.SerialNumber)
	require.Equal(t, gatewayID, ts.lastCaller())
}

// TestBadRotationKeepsMaterial writes each kind of broken material over good files: the
// reload fails, the previous certificate keeps serving, and fixing the files recovers.
func TestBadRotationKeepsMaterial(t *testing.T) {
	ca, otherCA := newCA(t), newCA(t)
	now := time.Now()
	good := issueWorkload(t, ca, appsID)
	other := issueWorkload(t, ca, appsID)

	tests := []struct {
		name    string
		write   func(tb testing.TB, dir string)
		wantErr string
	}{
		{
			name: "corrupt certificate",
			write: func(tb testing.TB, dir string) {
				tb.Helper()
				writeAtomic(tb, dir+"/apps.pem", []byte("-----BEGIN CERT"))
			},
			wantErr: "certificate and key",
		},
		{
			name: "certificate rotated without its key",
			write: func(tb testing.TB, dir string) {
				tb.Helper()
				writeAtomic(tb, dir+"/apps.pem", issueWorkload(tb, ca, appsID).cert)
			},
			wantErr: "private key does not match",
		},
		{
			name: "certificate from a CA outside the bundle",
			write: func(tb testing.TB, dir string) {
				tb.Helper()
				writeFiles(tb, dir, "apps", issueWorkload(tb, otherCA, appsID), ca.CertPEM())
			},
			wantErr: "does not verify against the CA bundle",
		},
		{
			name: "expired certificate",
			write: func(tb testing.TB, dir string) {
				tb.Helper()
				p := issue(tb, ca, devca.IssueRequest{Workload: appsID, NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
				writeFiles(tb, dir, "apps", p, ca.CertPEM())
			},
			wantErr: "expired",
		},
		{
			name: "certificate of another trust domain",
			write: func(tb testing.TB, dir string) {
				tb.Helper()
				writeFiles(tb, dir, "apps", issueWorkload(tb, ca, workload.Must("other.test", workload.Apps)), ca.CertPEM())
			},
			wantErr: "not in trust domain",
		},
		{
			name: "certificate without workload ID",
			write: func(tb testing.TB, dir string) {
				tb.Helper()
				writeFiles(tb, dir, "apps", issue(tb, ca, devca.IssueRequest{DNSNames: []string{"apps"}}), ca.CertPEM())
			},
			wantErr: "0 URI SANs",
		},
		{
			name:    "empty bundle",
			write:   func(tb testing.TB, dir string) { tb.Helper(); writeAtomic(tb, dir+"/apps-ca.pem", nil) },
			wantErr: "CA bundle holds no certificate",
		},
		{
			name: "certificate of a workload with two IDs",
			write: func(tb testing.TB, dir string) {
				tb.Helper()
				p := signTemplate(tb, ca, &x509.Certificate{
					URIs:        []*url.URL{appsID.URL(), gatewayID.URL()},
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				})
				writeFiles(tb, dir, "apps", p, ca.CertPEM())
			},
			wantErr: "2 URI SANs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := writeFiles(t, dir, "apps", good, ca.CertPEM())
			clock := newFakeClock()
			logs := &syncBuffer{}
			server, err := mtls.NewSource(files, trustDomain, slog.New(slog.NewJSONHandler(logs, nil)), mtls.WithClock(clock.Now))
			require.NoError(t, err)
			client := staticSource(t, issueWorkload(t, ca, gatewayID), ca.CertPEM())
			ts := startServer(t, server.ServerCredentials())

			tt.write(t, dir)
			require.ErrorContains(t, server.Reload(), tt.wantErr)
			leaf, err := check(t, ts.addr, client.ClientCredentials(appsID))
			require.NoError(t, err, "the previous material still serves")
			require.Equal(t, serialOf(t, good), leaf.SerialNumber)
			require.Equal(t, appsID, server.Identity())

			// The handshake-driven check reaches the same verdict and logs it.
			writeFiles(t, dir, "apps", good, ca.CertPEM()) // fresh stamps
			tt.write(t, dir)
			clock.Advance(mtls.DefaultCheckInterval)
			leaf, err = check(t, ts.addr, client.ClientCredentials(appsID))
			require.NoError(t, err)
			require.Equal(t, serialOf(t, good), leaf.SerialNumber)
			require.Contains(t, logs.String(), "reloading certificate files failed")
			require.Contains(t, logs.String(), tt.wantErr)

			// Good files land: the next check picks them up.
			writeFiles(t, dir, "apps", other, ca.CertPEM())
			clock.Advance(mtls.DefaultCheckInterval)
			leaf, err = check(t, ts.addr, client.ClientCredentials(appsID))
			require.NoError(t, err)
			require.Equal(t, serialOf(t, other), leaf.SerialNumber)
		})
	}
}

func TestNewSourceRefuses(t *testing.T) {
	ca, otherCA := newCA(t), newCA(t)
	tests := []struct {
		name    string
		files   func(tb testing.TB, dir string) mtls.Files
		trust   string
		wantErr string
	}{
		{
			name: "missing CA file name",
			files: func(tb testing.TB, dir string) mtls.Files {
				tb.Helper()
				f := writeFiles(tb, dir, "apps", issueWorkload(tb, ca, appsID), ca.CertPEM())
				f.CAFile = ""
				return f
			},
			trust:   trustDomain,
			wantErr: "all required",
		},
		{
			name: "file does not exist",
			files: func(tb testing.TB, dir string) mtls.Files {
				tb.Helper()
				f := writeFiles(tb, dir, "apps", issueWorkload(tb, ca, appsID), ca.CertPEM())
				f.KeyFile = dir + "/missing.pem"
				return f
			},
			trust:   trustDomain,
			wantErr: "no such file",
		},
		{
			name: "empty trust domain",
			files: func(tb testing.TB, dir string) mtls.Files {
				tb.Helper()
				return writeFiles(tb, dir, "apps", issueWorkload(tb, ca, appsID), ca.CertPEM())
			},
			wantErr: "empty trust domain",
		},
		{
			name: "certificate outside the bundle",
			files: func(tb testing.TB, dir string) mtls.Files {
				tb.Helper()
				return writeFiles(tb, dir, "apps", issueWorkload(tb, otherCA, appsID), ca.CertPEM())
			},
			trust:   trustDomain,
			wantErr: "unknown authority",
		},
		{
			name: "certificate of another trust domain",
			files: func(tb testing.TB, dir string) mtls.Files {
				tb.Helper()
				return writeFiles(tb, dir, "apps", issueWorkload(tb, ca, appsID), ca.CertPEM())
			},
			trust:   "other.test",
			wantErr: "not in trust domain",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mtls.NewSource(tt.files(t, t.TempDir()), tt.trust, nil)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}

	_, err := mtls.NewStaticSource([]byte("x"), []byte("y"), ca.CertPEM(), trustDomain)
	require.Error(t, err)
	p := issueWorkload(t, ca, appsID)
	static, err := mtls.NewStaticSource(p.cert, p.key, ca.CertPEM(), trustDomain)
	require.NoError(t, err)
	require.Error(t, static.Reload(), "a static source has no files")
}

// TestConcurrentHandshakesDuringRotation runs handshakes while the files rotate, for the race
// detector: every connection gets one consistent generation of material.
func TestConcurrentHandshakesDuringRotation(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	generations := []pair{issueWorkload(t, ca, appsID), issueWorkload(t, ca, appsID), issueWorkload(t, ca, appsID)}
	files := writeFiles(t, dir, "apps", generations[0], ca.CertPEM())
	server, err := mtls.NewSource(files, trustDomain, nil, mtls.WithCheckInterval(0))
	require.NoError(t, err)
	client := staticSource(t, issueWorkload(t, ca, gatewayID), ca.CertPEM())
	ts := startServer(t, server.ServerCredentials())

	known := map[string]bool{}
	for _, g := range generations {
		known[serialOf(t, g).String()] = true
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 4 {
		wg.Go(func() {
			for range 5 {
				conn, err := tls.Dial("tcp", ts.addr, client.ClientTLSConfig(appsID))
				if err != nil {
					errs <- err
					continue
				}
				serial := conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
				_ = conn.Close()
				if !known[serial] {
					t.Errorf("served unknown serial %s", serial)
				}
			}
		})
	}
	for _, g := range generations[1:] {
		// Key before certificate, as devca.WriteDir does; a reader in between sees a
		// mismatched pair, refuses it and keeps the previous generation.
		writeAtomic(t, files.KeyFile, g.key)
		writeAtomic(t, files.CertFile, g.cert)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, server.Reload())
	leaf, err := check(t, ts.addr, client.ClientCredentials(appsID))
	require.NoError(t, err)
	require.Equal(t, serialOf(t, generations[2]), leaf.SerialNumber)
}
