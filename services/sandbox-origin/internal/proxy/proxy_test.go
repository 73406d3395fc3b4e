package proxy_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
)

const canary = "sk-canary-3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c1e"

// upstream is a loopback TLS server standing in for a third-party API; it records what it
// received.
type upstream struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []*http.Request
	bodies  [][]byte
	handler http.HandlerFunc
}

func newUpstream(tb testing.TB) *upstream {
	tb.Helper()
	u := &upstream{}
	u.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, r.Clone(context.Background()))
		u.bodies = append(u.bodies, b)
		h := u.handler
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	tb.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) host() string { return strings.TrimPrefix(u.srv.URL, "https://") }

func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.got...)
}

func (u *upstream) set(h http.HandlerFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.handler = h
}

type fixture struct {
	up      *upstream
	front   *httptest.Server
	app     uuid.UUID
	owner   owner.ID
	mu      sync.Mutex
	records []proxy.Record
	secrets map[string]proxy.Secret
}

type options struct {
	allow         []string
	maxReq        int64
	maxResp       int64
	headerTimeout time.Duration
	burst         int
}

const appOrigin = "https://0123456789abcdef0123456789abcdef.apps.localhost:8090"

func newFixture(tb testing.TB, o options) *fixture {
	tb.Helper()
	f := &fixture{up: newUpstream(tb), app: uuid.New(), owner: owner.New()}
	if o.allow == nil {
		o.allow = []string{f.up.host()}
	}
	if o.maxReq == 0 {
		o.maxReq = 1 << 10
	}
	if o.maxResp == 0 {
		o.maxResp = 1 << 16
	}
	if o.headerTimeout == 0 {
		o.headerTimeout = 5 * time.Second
	}
	if o.burst == 0 {
		o.burst = 1000
	}
	f.secrets = map[string]proxy.Secret{
		"api": {Value: secret.New(canary), UpstreamHost: f.up.host(), Kind: proxy.InjectHeader, HeaderName: "Authorization", Prefix: "Bearer "},
		"q":   {Value: secret.New(canary), UpstreamHost: f.up.host(), Kind: proxy.InjectQuery, QueryParam: "api_key"},
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.up.srv.Certificate())
	p, err := proxy.New(proxy.Config{
		Resolve: func(_ context.Context, o owner.ID, app uuid.UUID, name string) (proxy.Secret, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			s, ok := f.secrets[name]
			if !ok || o != f.owner || app != f.app {
				return proxy.Secret{}, proxy.ErrNoSecret
			}
			return s, nil
		},
		Audit: func(_ context.Context, r proxy.Record) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.records = append(f.records, r)
		},
		AllowHosts:       o.allow,
		RootCAs:          roots,
		MaxRequestBytes:  o.maxReq,
		MaxResponseBytes: o.maxResp,
		Timeout:          10 * time.Second,
		HeaderTimeout:    o.headerTimeout,
		RatePerSecond:    0.001,
		Burst:            o.burst,
	})
	require.NoError(tb, err)
	tb.Cleanup(p.Close)
	f.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/__forge/proxy/"), "/")
		if rest != "" {
			rest = "/" + rest
		}
		p.Serve(w, r, proxy.Call{App: f.app, Owner: f.owner, Origin: appOrigin, Caller: "public", SecretName: name, Path: rest})
	}))
	tb.Cleanup(f.front.Close)
	return f
}

func (f *fixture) setSecret(name string, s proxy.Secret) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name] = s
}

// record waits for the n-th audit record (the audit runs as the handler returns, which may
// be just after the client has the response) and returns it.
func (f *fixture) record(tb testing.TB, n int) proxy.Record {
	tb.Helper()
	require.Eventually(tb, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.records) >= n
	}, 5*time.Second, 5*time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records[n-1]
}

// call sends a request to the proxy as a browser on the app's page would.
func (f *fixture) call(tb testing.TB, method, path string, body io.Reader, hdr http.Header) (*http.Response, []byte, error) {
	tb.Helper()
	req, err := http.NewRequest(method, f.front.URL+path, body)
	require.NoError(tb, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := f.front.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestProxyForwardsWithTheSecretInjected(t *testing.T) {
	f := newFixture(t, options{})
	f.up.set(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Set-Cookie", "upstream=1; Path=/")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Security-Policy", "default-src *")
		h.Set("Location", "https://elsewhere.example/")
		h.Set("Report-To", `{"group":"x"}`)
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		h.Set("X-Ratelimit-Remaining", "41")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"answer":42}`)
	})
	hdr := http.Header{
		"Cookie":          {"__Host-forge_view=abc"},
		"Authorization":   {"Bearer browser-token"},
		"Origin":          {appOrigin},
		"Referer":         {appOrigin + "/page"},
		"Sec-Fetch-Site":  {"same-origin"},
		"Sec-Fetch-Mode":  {"cors"},
		"X-Forwarded-For": {"10.0.0.1"},
		"Connection":      {"X-Secret-Hop"},
		"X-Secret-Hop":    {"1"},
		"X-Custom":        {"kept"},
		"Content-Type":    {"application/json"},
	}
	resp, body, err := f.call(t, http.MethodPost, "/__forge/proxy/api/v1/chat?model=m", strings.NewReader(`{"q":1}`), hdr)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, `{"answer":42}`, string(body))

	reqs := f.up.requests()
	require.Len(t, reqs, 1)
	got := reqs[0]
	require.Equal(t, "/v1/chat", got.URL.Path)
	require.Equal(t, "model=m", got.URL.RawQuery)
	require.Equal(t, "Bearer "+canary, got.Header.Get("Authorization"), "the value is injected as the secret says")
	require.Equal(t, f.up.host(), got.Host)
	require.Equal(t, "kept", got.Header.Get("X-Custom"))
	require.Equal(t, `{"q":1}`, string(f.up.bodies[0]))
	for _, h := range []string{"Cookie", "Origin", "Referer", "Sec-Fetch-Site", "Sec-Fetch-Mode", "X-Forwarded-For", "X-Secret-Hop"} {
		require.Empty(t, got.Header.Values(h), "%s must not reach the upstream", h)
	}

	for _, h := range []string{"Set-Cookie", "Access-Control-Allow-Origin", "Location", "Report-To", "X-Hop"} {
		require.Empty(t, resp.Header.Values(h), "%s must not reach the browser", h)
	}
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "41", resp.Header.Get("X-Ratelimit-Remaining"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.NotContains(t, fmt.Sprint(resp.Header), canary)

	rec := f.record(t, 1)
	require.Equal(t, proxy.OutcomeOK, rec.Outcome)
	require.Equal(t, http.StatusCreated, rec.Status)
	require.Equal(t, "api", rec.SecretName)
	require.Equal(t, f.up.host(), rec.UpstreamHost)
	require.EqualValues(t, len(`{"q":1}`), rec.RequestBytes)
	require.EqualValues(t, len(`{"answer":42}`), rec.ResponseBytes)
	require.NotContains(t, fmt.Sprintf("%+v", rec), canary)
}

func TestProxyQueryInjection(t *testing.T) {
	f := newFixture(t, options{})
	resp, _, err := f.call(t, http.MethodGet, "/__forge/proxy/q/search?api_key=forged&term=a%20b", nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got := f.up.requests()[0]
	require.Equal(t, []string{canary}, got.URL.Query()["api_key"], "the browser cannot choose the injected parameter")
	require.Equal(t, "a b", got.URL.Query().Get("term"))
}

func TestProxyRefusals(t *testing.T) {
	cases := []struct {
		name      string
		opts      options
		secret    func(f *fixture) proxy.Secret
		handler   http.HandlerFunc
		method    string
		path      string
		body      io.Reader
		header    http.Header
		status    int
		outcome   string
		reachesUp bool
	}{
		{name: "method TRACE", method: "TRACE", path: "/__forge/proxy/api/x", status: 405, outcome: proxy.OutcomeMethod},
		{name: "method OPTIONS", method: http.MethodOptions, path: "/__forge/proxy/api/x", status: 405, outcome: proxy.OutcomeMethod},
		{name: "method CONNECT-like PROPFIND", method: "PROPFIND", path: "/__forge/proxy/api/x", status: 405, outcome: proxy.OutcomeMethod},
		{name: "bad secret name", method: http.MethodGet, path: "/__forge/proxy/-api/x", status: 404, outcome: proxy.OutcomeBadPath},
		{name: "dot segment", method: http.MethodGet, path: "/__forge/proxy/api/a/%2e%2e/b", status: 404, outcome: proxy.OutcomeBadPath},
		{name: "encoded slash", method: http.MethodGet, path: "/__forge/proxy/api/a%2fb", status: 404, outcome: proxy.OutcomeBadPath},
		{name: "unknown secret", method: http.MethodGet, path: "/__forge/proxy/nope/x", status: 404, outcome: proxy.OutcomeNoSecret},
		{name: "another site's page", method: http.MethodPost, path: "/__forge/proxy/api/x", header: http.Header{"Sec-Fetch-Site": {"same-site"}}, status: 403, outcome: proxy.OutcomeCrossOrigin},
		{name: "another origin", method: http.MethodPost, path: "/__forge/proxy/api/x", header: http.Header{"Origin": {"https://ffffffffffffffffffffffffffffffff.apps.localhost:8090"}}, status: 403, outcome: proxy.OutcomeCrossOrigin},
		{name: "request too large", method: http.MethodPost, path: "/__forge/proxy/api/x", body: strings.NewReader(strings.Repeat("a", 2048)), status: 413, outcome: proxy.OutcomeRequestTooLarge},
		{name: "loopback without allowance", opts: options{allow: []string{}}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeDestination},
		{name: "localhost name without allowance", opts: options{allow: []string{}}, secret: func(f *fixture) proxy.Secret {
			s := f.secrets["api"]
			_, port, _ := net.SplitHostPort(f.up.host())
			s.UpstreamHost = "localhost:" + port
			return s
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeDestination},
		{name: "ipv4-mapped loopback", secret: func(f *fixture) proxy.Secret {
			s := f.secrets["api"]
			_, port, _ := net.SplitHostPort(f.up.host())
			s.UpstreamHost = "[::ffff:127.0.0.1]:" + port
			return s
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeDestination},
		{name: "cloud metadata address", secret: func(f *fixture) proxy.Secret {
			s := f.secrets["api"]
			s.UpstreamHost = "169.254.169.254"
			return s
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeDestination},
		{name: "upstream host with a path", secret: func(f *fixture) proxy.Secret {
			s := f.secrets["api"]
			s.UpstreamHost = f.up.host() + "/evil"
			return s
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeBadUpstream},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/?k="+canary, http.StatusFound)
		}, method: http.MethodGet, path: "/__forge/proxy/q/x", status: 502, outcome: proxy.OutcomeRedirect, reachesUp: true},
		{name: "response too large by length", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(1<<17))
			_, _ = w.Write(bytes.Repeat([]byte("a"), 1<<17))
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeTooLarge, reachesUp: true},
		{name: "slow upstream", opts: options{headerTimeout: 300 * time.Millisecond}, handler: func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 504, outcome: proxy.OutcomeTimeout, reachesUp: true},
		{name: "echo in a header", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeEcho, reachesUp: true},
		{name: "echo in a small body", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"you sent":"`+r.Header.Get("Authorization")+`"}`)
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeEcho, reachesUp: true},
		{name: "echo of a query value, URL-encoded", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.URL.RawQuery)
		}, method: http.MethodGet, path: "/__forge/proxy/q/x", status: 502, outcome: proxy.OutcomeEcho, reachesUp: true},
		{name: "encoding the proxy cannot read", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "br")
			_, _ = io.WriteString(w, "xx")
		}, method: http.MethodGet, path: "/__forge/proxy/api/x", status: 502, outcome: proxy.OutcomeEncoding, reachesUp: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			if tc.secret != nil {
				f.setSecret("api", tc.secret(f))
			}
			f.up.set(tc.handler)
			resp, body, err := f.call(t, tc.method, tc.path, tc.body, tc.header)
			require.NoError(t, err)
			require.Equal(t, tc.status, resp.StatusCode, "body: %s", body)
			require.NotContains(t, string(body), canary)
			require.NotContains(t, fmt.Sprint(resp.Header), canary)
			require.Empty(t, resp.Header.Get("Location"))
			rec := f.record(t, 1)
			require.Equal(t, tc.outcome, rec.Outcome)
			require.Equal(t, tc.status, rec.Status)
			if !tc.reachesUp {
				require.Empty(t, f.up.requests(), "the upstream must not be called")
			}
		})
	}
}

func TestProxyStreamsAndCutsOff(t *testing.T) {
	t.Run("gzip is decoded and checked", func(t *testing.T) {
		f := newFixture(t, options{})
		f.up.set(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, "key="+r.Header.Get("Authorization"))
			_ = zw.Close()
		})
		resp, body, err := f.call(t, http.MethodGet, "/__forge/proxy/api/x", nil, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadGateway, resp.StatusCode)
		require.NotContains(t, string(body), canary)
		require.Equal(t, proxy.OutcomeEcho, f.record(t, 1).Outcome)
	})
	t.Run("echo after the headers breaks the response before the value", func(t *testing.T) {
		f := newFixture(t, options{maxResp: 1 << 20})
		f.up.set(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fl := w.(http.Flusher)
			_, _ = io.WriteString(w, "data: hello\n\n"+strings.Repeat("x", 40<<10))
			fl.Flush()
			v := r.Header.Get("Authorization")
			// The value arrives split across writes.
			_, _ = io.WriteString(w, v[:10])
			fl.Flush()
			_, _ = io.WriteString(w, v[10:]+"\n\n")
		})
		resp, body, err := f.call(t, http.MethodGet, "/__forge/proxy/api/x", nil, nil)
		if err == nil {
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		require.NotContains(t, string(body), canary[:10], "not even a prefix of the value is written")
		require.Eventually(t, func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return len(f.records) == 1
		}, 5*time.Second, 10*time.Millisecond)
		require.Equal(t, proxy.OutcomeEcho, f.record(t, 1).Outcome)
	})
	t.Run("streamed answer over the limit is cut", func(t *testing.T) {
		f := newFixture(t, options{maxResp: 64 << 10})
		f.up.set(func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < 40; i++ {
				_, _ = w.Write(bytes.Repeat([]byte("a"), 4<<10))
				w.(http.Flusher).Flush()
			}
		})
		_, body, err := f.call(t, http.MethodGet, "/__forge/proxy/api/x", nil, nil)
		require.True(t, err != nil || len(body) <= 64<<10)
		require.Eventually(t, func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return len(f.records) == 1
		}, 5*time.Second, 10*time.Millisecond)
		require.Equal(t, proxy.OutcomeTooLarge, f.record(t, 1).Outcome)
	})
}

func TestProxyRateLimitPerApp(t *testing.T) {
	f := newFixture(t, options{burst: 2})
	for i, want := range []int{200, 200, 429} {
		resp, _, err := f.call(t, http.MethodGet, "/__forge/proxy/api/x", nil, nil)
		require.NoError(t, err)
		require.Equal(t, want, resp.StatusCode, "call %d", i)
	}
	require.Len(t, f.up.requests(), 2)
	require.Equal(t, proxy.OutcomeRateLimited, f.record(t, 3).Outcome)
}

func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		public bool
	}{
		{"93.184.216.34", true}, {"2606:4700::1111", true}, {"8.8.8.8", true},
		{"127.0.0.1", false}, {"127.8.9.10", false}, {"10.1.2.3", false}, {"172.16.0.1", false},
		{"172.31.255.255", false}, {"192.168.1.1", false}, {"100.64.0.1", false}, {"100.127.255.254", false},
		{"169.254.169.254", false}, {"0.0.0.0", false}, {"224.0.0.1", false}, {"255.255.255.255", false},
		{"240.0.0.1", false}, {"198.18.0.1", false}, {"::1", false}, {"::", false}, {"fe80::1", false},
		{"fc00::1", false}, {"fd12:3456::1", false}, {"ff02::1", false}, {"::ffff:8.8.8.8", false},
		{"::ffff:127.0.0.1", false}, {"64:ff9b::a00:1", false}, {"2002:a00:1::", false}, {"2001::1", false},
		{"::127.0.0.1", false},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			require.Equal(t, tc.public, proxy.Public(netip.MustParseAddr(tc.ip)))
		})
	}
}
