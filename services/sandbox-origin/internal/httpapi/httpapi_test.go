package httpapi_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/sandboxtest"
)

const indexHTML = "<!doctype html><title>app</title><p>secret app content</p>"

// get sends one request; host overrides the Host header (the TLS name stays the app's).
func get(t *testing.T, c *http.Client, method, url, host string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func putApp(s *sandboxtest.Sandbox, o owner.ID, v appsv1.Visibility) uuid.UUID {
	id := uuid.New()
	s.Apps.Put(id, &sandboxtest.App{Owner: o, Visibility: v, Files: map[string]string{
		"index.html": indexHTML, "app.js": "console.log(1)", "img/logo.svg": "<svg/>",
	}})
	return id
}

// requireStrictHeaders checks the headers every sandbox response must carry.
func requireStrictHeaders(t *testing.T, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'self'")
	require.Contains(t, csp, "connect-src 'self'")
	require.Contains(t, csp, "frame-ancestors "+sandboxtest.ConsoleOrigin+";")
	require.NotContains(t, csp, "frame-ancestors *")
	require.NotContains(t, csp, "allow-top-navigation")
	require.NotContains(t, csp, "unsafe-eval")
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
	require.Equal(t, "same-origin", h.Get("Cross-Origin-Resource-Policy"))
	require.Equal(t, "same-origin", h.Get("Cross-Origin-Opener-Policy"))
	require.Equal(t, "?1", h.Get("Origin-Agent-Cluster"))
	require.Contains(t, h.Get("Permissions-Policy"), "camera=()")
	require.Contains(t, h.Get("Permissions-Policy"), "geolocation=()")
	require.NotEmpty(t, h.Get("Content-Type"))
	require.NotEmpty(t, h.Get("Cache-Control"))
	require.Empty(t, h.Values("Access-Control-Allow-Origin"))
	require.Empty(t, h.Values("Access-Control-Allow-Credentials"))
}

func TestHeadersOnEveryResponse(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Security-Policy", "frame-ancestors *")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	upHost := strings.TrimPrefix(up.URL, "https://")
	s := sandboxtest.Start(t, sandboxtest.Options{ProxyAllow: []string{upHost}, ProxyRoots: roots})
	o := owner.New()
	pub := putApp(s, o, appsv1.Visibility_VISIBILITY_PUBLIC)
	priv := putApp(s, o, appsv1.Visibility_VISIBILITY_PRIVATE)
	down := putApp(s, o, appsv1.Visibility_VISIBILITY_PUBLIC)
	s.Apps.Update(down, func(a *sandboxtest.App) { a.Unavailable = true })
	s.Vault.Put(pub, "api", sandboxtest.Secret{Owner: o, Value: "test-key-0123456789", UpstreamHost: upHost,
		Injection: &vaultv1.Injection{Kind: vaultv1.Injection_KIND_HEADER, HeaderName: "X-Key"}})
	c := s.Client(t)
	etag := ""

	cases := []struct {
		name, method, url, host string
		hdr                     http.Header
		status                  int
		contentType             string
	}{
		{name: "file", method: "GET", url: s.URL(pub, "/"), status: 200, contentType: "text/html; charset=utf-8"},
		{name: "script", method: "GET", url: s.URL(pub, "/app.js"), status: 200, contentType: "text/javascript; charset=utf-8"},
		{name: "svg", method: "HEAD", url: s.URL(pub, "/img/logo.svg"), status: 200, contentType: "image/svg+xml"},
		{name: "not modified", method: "GET", url: s.URL(pub, "/"), hdr: http.Header{"If-None-Match": {"ETAG"}}, status: 304},
		{name: "missing file", method: "GET", url: s.URL(pub, "/nope.html"), status: 404, contentType: "text/plain; charset=utf-8"},
		{name: "reserved path", method: "GET", url: s.URL(pub, "/__forge/other"), status: 404, contentType: "text/plain; charset=utf-8"},
		{name: "method", method: "POST", url: s.URL(pub, "/"), status: 405, contentType: "text/plain; charset=utf-8"},
		{name: "preflight from another origin", method: "OPTIONS", url: s.URL(pub, "/"), hdr: http.Header{"Origin": {"https://evil.example"}, "Access-Control-Request-Method": {"GET"}}, status: 405, contentType: "text/plain; charset=utf-8"},
		{name: "unknown host", method: "GET", url: s.URL(pub, "/"), host: "apps.localhost", status: 404, contentType: "text/plain; charset=utf-8"},
		{name: "unknown app", method: "GET", url: s.URL(uuid.New(), "/"), status: 404, contentType: "text/plain; charset=utf-8"},
		{name: "private without ticket", method: "GET", url: s.URL(priv, "/"), status: 404, contentType: "text/plain; charset=utf-8"},
		{name: "bad ticket", method: "GET", url: s.URL(priv, "/?forge_ticket=nope"), status: 404, contentType: "text/plain; charset=utf-8"},
		{name: "apps down", method: "GET", url: s.URL(down, "/"), status: 503, contentType: "text/plain; charset=utf-8"},
		{name: "proxy", method: "GET", url: s.URL(pub, "/__forge/proxy/api/x"), status: 200, contentType: "application/json"},
		{name: "proxy refusal", method: "GET", url: s.URL(pub, "/__forge/proxy/none/x"), status: 404, contentType: "text/plain; charset=utf-8"},
		{name: "proxy method", method: "TRACE", url: s.URL(pub, "/__forge/proxy/api/x"), status: 405, contentType: "text/plain; charset=utf-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if v := tc.hdr.Get("If-None-Match"); v == "ETAG" {
				tc.hdr.Set("If-None-Match", etag)
			}
			resp, body := get(t, c, tc.method, tc.url, tc.host, tc.hdr)
			require.Equal(t, tc.status, resp.StatusCode, body)
			if tc.status == 304 {
				resp.Header.Set("Content-Type", "-") // a 304 has no body to type
			}
			requireStrictHeaders(t, resp.Header)
			if tc.contentType != "" {
				require.Equal(t, tc.contentType, resp.Header.Get("Content-Type"))
			}
			if tc.status >= 400 {
				require.NotContains(t, body, "secret app content")
				require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			}
			if tc.name == "file" {
				etag = resp.Header.Get("Etag")
				require.NotEmpty(t, etag)
				require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
				require.Equal(t, indexHTML, body)
			}
		})
	}
}

func TestHostSelectsTheApp(t *testing.T) {
	s := sandboxtest.Start(t, sandboxtest.Options{})
	o := owner.New()
	app := putApp(s, o, appsv1.Visibility_VISIBILITY_PUBLIC)
	c := s.Client(t)
	label := origin.Label(app)
	port := strings.TrimPrefix(s.Domain.Host(app), label+".apps.localhost:")
	for _, tc := range []struct {
		host   string
		status int
	}{
		{label + ".apps.localhost:" + port, 200},
		{strings.ToUpper(label) + ".apps.localhost:" + port, 404},
		{label + ".apps.localhost.:" + port, 404},
		{label + ".apps.localhost", 404},
		{"x." + label + ".apps.localhost:" + port, 404},
		{"apps.localhost:" + port, 404},
		{"xn--" + label[4:] + ".apps.localhost:" + port, 404},
		{"127.0.0.1:" + port, 404},
	} {
		t.Run(tc.host, func(t *testing.T) {
			resp, body := get(t, c, "GET", s.URL(app, "/"), tc.host, nil)
			require.Equal(t, tc.status, resp.StatusCode)
			requireStrictHeaders(t, resp.Header)
			if tc.status == 404 {
				require.Equal(t, "not found\n", body)
			}
		})
	}
}

// issue stores a ticket the way IssueViewTicket does.
func issue(t *testing.T, s *sandboxtest.Sandbox, appOwner owner.ID, app uuid.UUID, viewer owner.ID, ttl time.Duration) string {
	t.Helper()
	tk, hash, err := origin.NewTicket()
	require.NoError(t, err)
	require.NoError(t, s.Store.IssueTicket(context.Background(), appOwner, hash, app, viewer, s.Clock.Now().Add(ttl)))
	return tk.Reveal()
}

// exchange presents a ticket or token and returns the cookie set (nil when refused).
func exchange(t *testing.T, s *sandboxtest.Sandbox, app uuid.UUID, query string) (*http.Response, *http.Cookie) {
	t.Helper()
	resp, _ := get(t, s.Client(t), "GET", s.URL(app, "/page/?"+query+"&keep=1"), "", nil)
	requireStrictHeaders(t, resp.Header)
	cs := resp.Cookies()
	if len(cs) == 0 {
		return resp, nil
	}
	require.Len(t, cs, 1)
	return resp, cs[0]
}

func withCookie(c *http.Cookie) http.Header {
	return http.Header{"Cookie": {c.Name + "=" + c.Value}}
}

func TestPrivateAppNeedsAViewTicket(t *testing.T) {
	s := sandboxtest.Start(t, sandboxtest.Options{})
	ownerA, collaborator, stranger := owner.New(), owner.New(), owner.New()
	app := putApp(s, ownerA, appsv1.Visibility_VISIBILITY_PRIVATE)
	other := putApp(s, ownerA, appsv1.Visibility_VISIBILITY_PRIVATE)
	foreign := putApp(s, stranger, appsv1.Visibility_VISIBILITY_PRIVATE)
	s.Apps.Update(app, func(a *sandboxtest.App) { a.Viewers[collaborator] = true })
	c := s.Client(t)

	resp, body := get(t, c, "GET", s.URL(app, "/"), "", nil)
	require.Equal(t, 404, resp.StatusCode)
	require.NotContains(t, body, "secret app content")

	ticket := issue(t, s, ownerA, app, collaborator, time.Minute)
	resp, cookie := exchange(t, s, app, "forge_ticket="+ticket)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/page/?keep=1", resp.Header.Get("Location"), "the ticket leaves the URL")
	require.NotNil(t, cookie)
	require.Equal(t, origin.ViewCookie, cookie.Name)
	raw := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=None", "Partitioned", "Max-Age="} {
		require.Contains(t, raw, attr)
	}
	require.NotContains(t, strings.ToLower(raw), "domain=")
	require.NotContains(t, raw, ticket)

	resp, body = get(t, c, "GET", s.URL(app, "/"), "", withCookie(cookie))
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, indexHTML, body)
	require.Equal(t, "private, no-cache", resp.Header.Get("Cache-Control"))

	t.Run("reused ticket", func(t *testing.T) {
		resp, ck := exchange(t, s, app, "forge_ticket="+ticket)
		require.Equal(t, 404, resp.StatusCode)
		require.Nil(t, ck)
	})
	t.Run("expired ticket", func(t *testing.T) {
		tk := issue(t, s, ownerA, app, collaborator, time.Minute)
		s.Clock.Advance(61 * time.Second)
		resp, ck := exchange(t, s, app, "forge_ticket="+tk)
		require.Equal(t, 404, resp.StatusCode)
		require.Nil(t, ck)
	})
	t.Run("ticket for another app of the owner", func(t *testing.T) {
		tk := issue(t, s, ownerA, other, collaborator, time.Minute)
		resp, ck := exchange(t, s, app, "forge_ticket="+tk)
		require.Equal(t, 404, resp.StatusCode)
		require.Nil(t, ck)
	})
	t.Run("ticket for another tenant's app", func(t *testing.T) {
		tk := issue(t, s, stranger, foreign, stranger, time.Minute)
		resp, ck := exchange(t, s, app, "forge_ticket="+tk)
		require.Equal(t, 404, resp.StatusCode)
		require.Nil(t, ck)
		resp, ck = exchange(t, s, foreign, "forge_ticket="+tk)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the ticket still works at its own origin")
		require.NotNil(t, ck)
	})
	t.Run("ticket for a viewer no longer allowed", func(t *testing.T) {
		tk := issue(t, s, ownerA, app, stranger, time.Minute)
		resp, ck := exchange(t, s, app, "forge_ticket="+tk)
		require.Equal(t, 404, resp.StatusCode)
		require.Nil(t, ck)
	})
	t.Run("cookie of one app at another", func(t *testing.T) {
		resp, _ := get(t, c, "GET", s.URL(other, "/"), "", withCookie(cookie))
		require.Equal(t, 404, resp.StatusCode)
	})
	t.Run("forged cookie", func(t *testing.T) {
		resp, _ := get(t, c, "GET", s.URL(app, "/"), "", http.Header{"Cookie": {origin.ViewCookie + "=" + strings.Repeat("A", 80)}})
		require.Equal(t, 404, resp.StatusCode)
	})
	t.Run("collaborator removed", func(t *testing.T) {
		s.Apps.Update(app, func(a *sandboxtest.App) { delete(a.Viewers, collaborator) })
		s.Cache.Invalidate(app) // what apps.app.access_changed does (see the events tests)
		resp, _ := get(t, c, "GET", s.URL(app, "/"), "", withCookie(cookie))
		require.Equal(t, 404, resp.StatusCode)
	})
}

func TestLinkAppNeedsItsShareToken(t *testing.T) {
	s := sandboxtest.Start(t, sandboxtest.Options{})
	o := owner.New()
	app := putApp(s, o, appsv1.Visibility_VISIBILITY_LINK)
	other := putApp(s, o, appsv1.Visibility_VISIBILITY_LINK)
	s.Apps.Update(app, func(a *sandboxtest.App) { a.Tokens["good-token"] = s.Clock.Now().Add(time.Hour) })
	s.Apps.Update(other, func(a *sandboxtest.App) { a.Tokens["other-token"] = s.Clock.Now().Add(time.Hour) })
	c := s.Client(t)

	resp, _ := get(t, c, "GET", s.URL(app, "/"), "", nil)
	require.Equal(t, 404, resp.StatusCode)
	resp, ck := exchange(t, s, app, "forge_share=wrong")
	require.Equal(t, 404, resp.StatusCode)
	require.Nil(t, ck)
	resp, ck = exchange(t, s, app, "forge_share=other-token")
	require.Equal(t, 404, resp.StatusCode, "another app's token")
	require.Nil(t, ck)

	resp, ck = exchange(t, s, app, "forge_share=good-token")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, origin.ShareCookie, ck.Name)
	require.NotContains(t, ck.Value, "good-token")
	resp, body := get(t, c, "GET", s.URL(app, "/"), "", withCookie(ck))
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, indexHTML, body)
	resp, _ = get(t, c, "GET", s.URL(other, "/"), "", withCookie(ck))
	require.Equal(t, 404, resp.StatusCode, "the cookie opens its own app only")

	// The owner opens a link app with a view ticket too.
	tk := issue(t, s, o, app, o, time.Minute)
	resp, vk := exchange(t, s, app, "forge_ticket="+tk)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)

	// Revoked: apps says no, and the access event drops what the origin remembered.
	s.Apps.Update(app, func(a *sandboxtest.App) { delete(a.Tokens, "good-token") })
	s.Cache.Invalidate(app)
	resp, _ = get(t, c, "GET", s.URL(app, "/"), "", withCookie(ck))
	require.Equal(t, 404, resp.StatusCode)
	resp, _ = get(t, c, "GET", s.URL(app, "/"), "", withCookie(vk))
	require.Equal(t, 200, resp.StatusCode, "the owner's view grant still works")

	// Private now: a share token no longer opens it.
	s.Apps.Update(other, func(a *sandboxtest.App) { a.Visibility = appsv1.Visibility_VISIBILITY_PRIVATE })
	s.Cache.Invalidate(other)
	resp, ck = exchange(t, s, other, "forge_share=other-token")
	require.Equal(t, 404, resp.StatusCode)
	require.Nil(t, ck)
}
