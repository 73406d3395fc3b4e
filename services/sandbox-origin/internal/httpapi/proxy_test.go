package httpapi_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/sandboxtest"
)

func TestProxyThroughTheAppOrigin(t *testing.T) {
	const keyA, keyB = "sk-app-a-0123456789abcdef", "sk-app-b-fedcba9876543210"
	var mu sync.Mutex
	var seen []string
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	host := strings.TrimPrefix(up.URL, "https://")
	s := sandboxtest.Start(t, sandboxtest.Options{ProxyAllow: []string{host}, ProxyRoots: roots})
	ownerA, ownerB := owner.New(), owner.New()
	appA, appB := putApp(s, ownerA, appsv1.Visibility_VISIBILITY_PUBLIC), putApp(s, ownerB, appsv1.Visibility_VISIBILITY_PUBLIC)
	inj := &vaultv1.Injection{Kind: vaultv1.Injection_KIND_HEADER, HeaderName: "Authorization", Prefix: "Bearer "}
	s.Vault.Put(appA, "llm", sandboxtest.Secret{Owner: ownerA, Value: keyA, UpstreamHost: host, Injection: inj})
	s.Vault.Put(appB, "llmb", sandboxtest.Secret{Owner: ownerB, Value: keyB, UpstreamHost: host, Injection: inj})
	c := s.Client(t)

	resp, body := get(t, c, "POST", s.URL(appA, "/__forge/proxy/llm/v1/complete"), "",
		http.Header{"Origin": {s.Domain.Origin(appA)}, "Sec-Fetch-Site": {"same-origin"}})
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, `{"ok":true}`, body)
	requireStrictHeaders(t, resp.Header)

	for _, tc := range []struct {
		name   string
		url    string
		hdr    http.Header
		status int
	}{
		{"app B's secret from app A's origin", s.URL(appA, "/__forge/proxy/llmb/v1/complete"), nil, 404},
		{"app A's proxy from app B's page", s.URL(appA, "/__forge/proxy/llm/v1/complete"),
			http.Header{"Origin": {s.Domain.Origin(appB)}, "Sec-Fetch-Site": {"same-site"}}, 403},
		{"app A's proxy from a navigation elsewhere", s.URL(appA, "/__forge/proxy/llm/v1/complete"),
			http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"navigate"}}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, c, "POST", tc.url, "", tc.hdr)
			require.Equal(t, tc.status, resp.StatusCode)
			require.NotContains(t, body, keyA)
			require.NotContains(t, body, keyB)
		})
	}
	mu.Lock()
	require.Equal(t, []string{"Bearer " + keyA}, seen, "only app A's own call reached the upstream")
	mu.Unlock()

	// Every call is audited, none with the value.
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, s.PG.Migrator.QueryRow(ctx, `SELECT count(*) FROM proxy_calls WHERE owner_id = $1`, ownerA).Scan(&n))
		return n == 4
	}, 5*time.Second, 20*time.Millisecond)
	var app, name, upstream, outcome string
	var status int
	require.NoError(t, s.PG.Migrator.QueryRow(ctx, `SELECT app_id::text, secret_name, upstream_host, outcome, status
		FROM proxy_calls WHERE owner_id = $1 AND outcome = 'ok'`, ownerA).Scan(&app, &name, &upstream, &outcome, &status))
	require.Equal(t, []any{appA.String(), "llm", host, 200}, []any{app, name, upstream, status})
	var leaked int
	require.NoError(t, s.PG.Migrator.QueryRow(ctx, `SELECT count(*) FROM proxy_calls p WHERE strpos(p::text, $1) > 0 OR strpos(p::text, $2) > 0`,
		keyA, keyB).Scan(&leaked))
	require.Zero(t, leaked)
	require.NotContains(t, s.Logs(), keyA)
	require.NotContains(t, s.Logs(), keyB)
}
