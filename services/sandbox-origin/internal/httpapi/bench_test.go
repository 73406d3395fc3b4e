package httpapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/devca"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/sandboxtest"
)

// smallFiles is a typical generated app: a page, a script, a stylesheet, an icon.
var smallFiles = map[string]string{
	"index.html": "<!doctype html><html><head><link rel=stylesheet href=style.css></head><body><div id=app></div><script src=app.js></script></body></html>",
	"app.js":     strings.Repeat("document.getElementById('app').textContent = 'hello';\n", 40),
	"style.css":  strings.Repeat("body { font-family: sans-serif; margin: 0 auto; }\n", 30),
	"icon.svg":   `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4"/></svg>`,
}

func benchClient(pool *x509.CertPool, addr string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func fetchAll(b *testing.B, c *http.Client, urls []string) {
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 32<<10)
		for pb.Next() {
			resp, err := c.Get(urls[i%len(urls)])
			i++
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.CopyBuffer(io.Discard, resp.Body, buf)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkServeSmallFiles serves the same small files from a public app through the sandbox
// origin and from a bare net/http file server with the same TLS certificate, with parallel
// clients on loopback. Compare the two ns/op (the target is the sandbox at >= 0.8x the
// throughput of the file server).
func BenchmarkServeSmallFiles(b *testing.B) {
	s := sandboxtest.Start(b, sandboxtest.Options{})
	app := uuid.New()
	s.Apps.Put(app, &sandboxtest.App{Owner: owner.New(), Visibility: appsv1.Visibility_VISIBILITY_PUBLIC, Files: smallFiles})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.PKI.CA.CertPEM())

	dir := b.TempDir()
	for p, c := range smallFiles {
		require.NoError(b, os.WriteFile(filepath.Join(dir, p), []byte(c), 0o600))
	}
	certPEM, keyPEM, err := s.PKI.CA.Issue(devca.IssueRequest{DNSNames: devca.EdgeDNSNames()})
	require.NoError(b, err)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(b, err)
	bare := httptest.NewUnstartedServer(http.FileServer(http.Dir(dir)))
	bare.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	bare.StartTLS()
	b.Cleanup(bare.Close)

	var sandboxURLs, bareURLs []string
	for p := range smallFiles {
		sandboxURLs = append(sandboxURLs, s.URL(app, "/"+p))
		bareURLs = append(bareURLs, "https://localhost/"+p)
	}
	b.Run("sandbox", func(b *testing.B) { fetchAll(b, benchClient(pool, s.Addr), sandboxURLs) })
	b.Run("net-http-fileserver", func(b *testing.B) {
		fetchAll(b, benchClient(pool, strings.TrimPrefix(bare.URL, "https://")), bareURLs)
	})
}

// BenchmarkProxyAddedLatency calls a loopback upstream directly and through the secret proxy
// (resolve at the vault, inject, forward, check the answer, audit), one call at a time, and
// reports p50 and p99 of each.
func BenchmarkProxyAddedLatency(b *testing.B) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"text":"hello"}]}`)
	}))
	b.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	host := strings.TrimPrefix(up.URL, "https://")
	s := sandboxtest.Start(b, sandboxtest.Options{ProxyAllow: []string{host}, ProxyRoots: roots})
	o := owner.New()
	app := uuid.New()
	s.Apps.Put(app, &sandboxtest.App{Owner: o, Visibility: appsv1.Visibility_VISIBILITY_PUBLIC, Files: smallFiles})
	s.Vault.Put(app, "llm", sandboxtest.Secret{Owner: o, Value: "sk-bench-0123456789abcdef", UpstreamHost: host,
		Injection: &vaultv1.Injection{Kind: vaultv1.Injection_KIND_HEADER, HeaderName: "Authorization", Prefix: "Bearer "}})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.PKI.CA.CertPEM())
	viaProxy := benchClient(pool, s.Addr)
	direct := up.Client()

	measure := func(b *testing.B, c *http.Client, url string) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("direct", func(b *testing.B) { measure(b, direct, up.URL+"/v1/complete") })
	b.Run("through-proxy", func(b *testing.B) { measure(b, viaProxy, s.URL(app, "/__forge/proxy/llm/v1/complete")) })
	_ = fmt.Sprint
}
