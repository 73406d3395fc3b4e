package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
)

// TestPinnedTestHost: a development setting maps a DNS name (the vault accepts no IP or
// localhost names) to a loopback test server; TLS is still verified against the name.
func TestPinnedTestHost(t *testing.T) {
	ca, err := devca.New("test", time.Hour)
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue(devca.IssueRequest{DNSNames: []string{"api.upstream.test"}})
	require.NoError(t, err)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "pinned "+r.Host)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	up.StartTLS()
	t.Cleanup(up.Close)
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	app, o := uuid.New(), owner.New()
	for _, tc := range []struct {
		name   string
		allow  []string
		status int
	}{
		{"pinned", []string{"api.upstream.test:" + port + "=127.0.0.1"}, 200},
		{"pinned to a bad address", []string{"api.upstream.test:" + port + "=127.0.0.2"}, 502},
		{"allowed but not pinned: the name does not resolve", []string{"api.upstream.test:" + port}, 502},
		{"not allowed", nil, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := proxy.New(proxy.Config{
				Resolve: func(context.Context, owner.ID, uuid.UUID, string) (proxy.Secret, error) {
					return proxy.Secret{Value: secret.New("k-0123456789"), UpstreamHost: "api.upstream.test:" + port,
						Kind: proxy.InjectHeader, HeaderName: "X-Key"}, nil
				},
				Audit: func(context.Context, proxy.Record) {}, AllowHosts: tc.allow, RootCAs: roots,
				MaxRequestBytes: 1024, MaxResponseBytes: 1024, Timeout: 5 * time.Second, HeaderTimeout: 2 * time.Second,
				RatePerSecond: 10, Burst: 10,
			})
			require.NoError(t, err)
			defer p.Close()
			rec := httptest.NewRecorder()
			p.Serve(rec, httptest.NewRequest(http.MethodGet, "/__forge/proxy/x/", nil),
				proxy.Call{App: app, Owner: o, Origin: appOrigin, Caller: "public", SecretName: "x"})
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.status == 200 {
				require.Equal(t, "pinned api.upstream.test:"+port, rec.Body.String())
			}
		})
	}
}
