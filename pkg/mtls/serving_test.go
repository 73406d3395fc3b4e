package mtls_test

import (
	"crypto/tls"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/mtls"
)

func TestServingSource(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	edge1 := issue(t, ca, devca.IssueRequest{DNSNames: devca.EdgeDNSNames()})
	certFile, keyFile := filepath.Join(dir, "edge.pem"), filepath.Join(dir, "edge-key.pem")
	writeAtomic(t, certFile, edge1.cert)
	writeAtomic(t, keyFile, edge1.key)

	clock := newFakeClock()
	serving, err := mtls.NewServingSource(certFile, keyFile, nil, mtls.WithClock(clock.Now))
	require.NoError(t, err)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		TLSConfig:         serving.TLSConfig(),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.ServeTLS(lis, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	// A browser-like client: it trusts the CA and presents no certificate.
	get := func(tb testing.TB, host string) (*big.Int, error) {
		tb.Helper()
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: certPool(tb, ca.CertPEM()), ServerName: host, MinVersion: tls.VersionTLS12},
		}}
		resp, err := client.Get("https://" + lis.Addr().String() + "/")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		require.Equal(tb, http.StatusNoContent, resp.StatusCode)
		return resp.TLS.PeerCertificates[0].SerialNumber, nil
	}

	for _, host := range []string{"localhost", "console.localhost", "myapp.apps.localhost"} {
		serial, err := get(t, host)
		require.NoError(t, err, host)
		require.Equal(t, serialOf(t, edge1), serial)
	}
	_, err = get(t, "example.com")
	require.ErrorContains(t, err, "not example.com")

	// A corrupt rotation keeps the old certificate.
	writeAtomic(t, certFile, []byte("garbage"))
	require.Error(t, serving.Reload())
	serial, err := get(t, "localhost")
	require.NoError(t, err)
	require.Equal(t, serialOf(t, edge1), serial)

	// A good rotation is served on the next connection once the check interval passed.
	edge2 := issue(t, ca, devca.IssueRequest{DNSNames: devca.EdgeDNSNames()})
	writeAtomic(t, keyFile, edge2.key)
	writeAtomic(t, certFile, edge2.cert)
	clock.Advance(mtls.DefaultCheckInterval)
	serial, err = get(t, "localhost")
	require.NoError(t, err)
	require.Equal(t, serialOf(t, edge2), serial)

	_, err = mtls.NewServingSource(certFile, "", nil)
	require.Error(t, err)
}
