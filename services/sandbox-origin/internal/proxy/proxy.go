// Package proxy is the request-time secret proxy: an app's scripts call a third-party API
// through a path on the app's own origin, and the sandbox origin sends the request to the
// upstream the secret names, with the secret's value injected there, so the value never
// reaches the browser.
//
// It is built like an egress proxy that distrusts both sides. The upstream host comes from
// the secret, never from the request; only public addresses are dialed (checked after DNS
// resolution and again at connect time); redirects are not followed; methods, sizes and time
// are bounded; cookies, credentials and hop-by-hop headers are stripped both ways and only
// plain response headers pass; a response that would carry the value back (an upstream that
// echoes its request) is cut off before the value is written; calls are rate-limited per app
// and each one is audited without the value. Errors are written from fixed strings: an
// upstream error, which may embed the request URL and so a query-injected value, is never
// logged or returned.
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
)

// InjectionKind says where a secret's value goes.
type InjectionKind int

// The injection kinds (mirroring secrets-vault's Injection.Kind).
const (
	InjectHeader InjectionKind = iota + 1
	InjectQuery
)

// Secret is a resolved secret: its value, the one host it may be sent to, and how.
type Secret struct {
	Value        secret.Value
	UpstreamHost string
	Kind         InjectionKind
	HeaderName   string
	Prefix       string
	QueryParam   string
}

// ErrNoSecret is what Resolve returns for a secret the app does not have.
var ErrNoSecret = errors.New("no such secret")

// Call is one proxied request, as the origin server understood it.
type Call struct {
	App   uuid.UUID
	Owner owner.ID
	// Origin is the app's own origin; a browser request from any other is refused.
	Origin string
	// Caller says who is calling for the audit ("viewer:<owner id>", "share-link", "public").
	Caller string
	// SecretName and Path come from /__forge/proxy/<name><path>; Path is the escaped rest.
	SecretName string
	Path       string
}

// Record is one audit entry. It never holds the value.
type Record struct {
	App           uuid.UUID
	Owner         owner.ID
	Caller        string
	SecretName    string
	UpstreamHost  string
	Method        string
	Status        int
	Outcome       string
	RequestBytes  int64
	ResponseBytes int64
	Duration      time.Duration
}

// Outcomes recorded in the audit.
const (
	OutcomeOK              = "ok"
	OutcomeMethod          = "method_refused"
	OutcomeBadPath         = "bad_path"
	OutcomeCrossOrigin     = "cross_origin_refused"
	OutcomeRateLimited     = "rate_limited"
	OutcomeRequestTooLarge = "request_too_large"
	OutcomeNoSecret        = "no_secret"
	OutcomeResolveFailed   = "resolve_failed"
	OutcomeBadUpstream     = "bad_upstream_host"
	OutcomeDestination     = "destination_refused"
	OutcomeTimeout         = "upstream_timeout"
	OutcomeUpstreamError   = "upstream_error"
	OutcomeRedirect        = "redirect_refused"
	OutcomeEncoding        = "encoding_refused"
	OutcomeTooLarge        = "response_too_large"
	OutcomeEcho            = "value_echo_refused"
)

// Config configures a Proxy.
type Config struct {
	// Resolve asks secrets-vault for a secret of the app at request time.
	Resolve func(ctx context.Context, o owner.ID, app uuid.UUID, name string) (Secret, error)
	// Audit records each call; it must not fail the response already sent.
	Audit func(ctx context.Context, r Record)
	// AllowHosts may resolve to non-public addresses (development and tests only): "host",
	// "host:port", or "host[:port]=ip" to also resolve the name to that address.
	AllowHosts []string
	// RootCAs replaces the system roots for upstream TLS when set (tests, development).
	RootCAs *x509.CertPool
	// MaxRequestBytes and MaxResponseBytes bound the bodies.
	MaxRequestBytes, MaxResponseBytes int64
	// Timeout bounds the whole exchange; HeaderTimeout the wait for the response headers.
	Timeout, HeaderTimeout time.Duration
	// RatePerSecond and Burst limit calls per app.
	RatePerSecond float64
	Burst         int
	// Resolver resolves upstream names; nil uses the default resolver.
	Resolver *net.Resolver
	Logger   *slog.Logger
}

// Proxy serves proxied calls.
type Proxy struct {
	cfg    Config
	client *http.Client

	mu       sync.Mutex
	limiters map[uuid.UUID]*limiter
}

type limiter struct {
	l    *rate.Limiter
	used time.Time
}

// New builds a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Resolve == nil || cfg.Audit == nil {
		return nil, errors.New("proxy: Resolve and Audit are required")
	}
	if cfg.MaxRequestBytes <= 0 || cfg.MaxResponseBytes <= 0 || cfg.Timeout <= 0 || cfg.HeaderTimeout <= 0 ||
		cfg.RatePerSecond <= 0 || cfg.Burst <= 0 {
		return nil, errors.New("proxy: limits must be positive")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &dialGuard{allow: map[string]bool{}, pin: map[string]netip.Addr{}, resolver: cfg.Resolver, timeout: cfg.HeaderTimeout}
	for _, h := range cfg.AllowHosts {
		h, addr, pinned := strings.Cut(strings.ToLower(h), "=")
		g.allow[h] = true
		if pinned {
			ip, err := netip.ParseAddr(addr)
			if err != nil {
				return nil, fmt.Errorf("proxy: allowed host %q: want host[:port]=ip", h)
			}
			g.pin[h] = ip
		}
	}
	tr := &http.Transport{
		// Never an environment proxy: the request goes where the secret says, from here.
		Proxy:                  nil,
		DialContext:            g.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    cfg.HeaderTimeout,
		ResponseHeaderTimeout:  cfg.HeaderTimeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		// The transport asks for gzip itself and hands back the decoded body, which is what
		// the echo check must read; any other encoding is refused below.
		DisableCompression: false,
	}
	return &Proxy{
		cfg: cfg,
		client: &http.Client{
			Transport: tr,
			// Redirects are never followed: the value must reach only the secret's host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		limiters: map[uuid.UUID]*limiter{},
	}, nil
}

// Close releases idle upstream connections.
func (p *Proxy) Close() { p.client.CloseIdleConnections() }

var (
	secretName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)
	// upstreamHost is what a secret's host may look like: a lower-case DNS name or IPv4
	// literal (bracketed IPv6 too), an optional port. No user info, path or wildcard.
	upstreamHost = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$`)
)

var allowedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
}

// Serve proxies r for c and writes the answer to w. The origin server has already checked that
// the caller may open the app.
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request, c Call) {
	start := time.Now()
	rec := Record{App: c.App, Owner: c.Owner, Caller: c.Caller, SecretName: c.SecretName, Method: r.Method}
	defer func() {
		rec.Duration = time.Since(start)
		// The audit outlives a browser that went away.
		p.cfg.Audit(context.WithoutCancel(r.Context()), rec)
	}()
	refuse := func(status int, outcome, msg string) {
		rec.Status, rec.Outcome = status, outcome
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg+"\n")
	}

	if !allowedMethods[r.Method] {
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE")
		refuse(http.StatusMethodNotAllowed, OutcomeMethod, "method not allowed")
		return
	}
	if !secretName.MatchString(c.SecretName) || !cleanPath(c.Path) {
		refuse(http.StatusNotFound, OutcomeBadPath, "not found")
		return
	}
	// Only the app's own pages may use its proxy: a browser says where a request comes from
	// (Fetch Metadata, Origin), so another app or site cannot spend this app's secret, even
	// blindly, with the viewer's cookie.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		refuse(http.StatusForbidden, OutcomeCrossOrigin, "cross-origin use of the proxy is refused")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != c.Origin {
		refuse(http.StatusForbidden, OutcomeCrossOrigin, "cross-origin use of the proxy is refused")
		return
	}
	if !p.allow(c.App) {
		w.Header().Set("Retry-After", "1")
		refuse(http.StatusTooManyRequests, OutcomeRateLimited, "too many proxy calls for this app")
		return
	}
	body, ok := readBody(r, p.cfg.MaxRequestBytes)
	if !ok {
		refuse(http.StatusRequestEntityTooLarge, OutcomeRequestTooLarge, "request body too large")
		return
	}
	rec.RequestBytes = int64(len(body))

	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
	defer cancel()
	sec, err := p.cfg.Resolve(ctx, c.Owner, c.App, c.SecretName)
	switch {
	case errors.Is(err, ErrNoSecret):
		refuse(http.StatusNotFound, OutcomeNoSecret, "not found")
		return
	case err != nil:
		p.cfg.Logger.WarnContext(ctx, "proxy: resolving a secret failed", "app_id", c.App, "secret_name", c.SecretName,
			"error", err)
		refuse(http.StatusBadGateway, OutcomeResolveFailed, "the secret could not be resolved")
		return
	}
	rec.UpstreamHost = sec.UpstreamHost
	if !upstreamHost.MatchString(sec.UpstreamHost) {
		refuse(http.StatusBadGateway, OutcomeBadUpstream, "the secret's upstream host is not usable")
		return
	}

	out, err := p.outbound(ctx, r, c, sec, body)
	if err != nil {
		refuse(http.StatusBadGateway, OutcomeBadUpstream, "the secret cannot be injected")
		return
	}
	resp, err := p.client.Do(out)
	if err != nil {
		// Never log or return err itself: a url.Error quotes the URL, query value included.
		switch {
		case errors.Is(err, errDestinationRefused):
			refuse(http.StatusBadGateway, OutcomeDestination, "the upstream address is not allowed")
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			refuse(http.StatusGatewayTimeout, OutcomeTimeout, "the upstream did not answer in time")
		default:
			refuse(http.StatusBadGateway, OutcomeUpstreamError, "the upstream could not be reached")
		}
		return
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified:
		refuse(http.StatusBadGateway, OutcomeRedirect, "the upstream redirected; redirects are not followed")
		return
	case resp.Header.Get("Content-Encoding") != "" && !strings.EqualFold(resp.Header.Get("Content-Encoding"), "identity"):
		refuse(http.StatusBadGateway, OutcomeEncoding, "the upstream answered in an encoding the proxy cannot check")
		return
	case resp.ContentLength > p.cfg.MaxResponseBytes:
		refuse(http.StatusBadGateway, OutcomeTooLarge, "the upstream answer is too large")
		return
	}
	pats := patterns(sec.Value)
	h := w.Header()
	hop := connectionListed(resp.Header)
	for k, vs := range resp.Header {
		if !passResponseHeader(k) || hop[http.CanonicalHeaderKey(k)] {
			continue
		}
		for _, v := range vs {
			if containsAny([]byte(v), pats) {
				refuse(http.StatusBadGateway, OutcomeEcho, "the upstream answer was refused")
				return
			}
		}
		h[k] = vs
	}
	h.Set("Cache-Control", "no-store")
	if resp.ContentLength >= 0 && !resp.Uncompressed {
		h.Set("Content-Length", itoa(resp.ContentLength))
	}
	// The answer is streamed (server-sent events work), but never a byte that could be part of
	// the value: see scanner.
	sc := &scanner{pats: pats}
	buf := make([]byte, 32<<10)
	var sent int64
	headerWritten := false
	abort := func(outcome string) {
		rec.Outcome = outcome
		if !headerWritten {
			for k := range resp.Header {
				if passResponseHeader(k) {
					h.Del(k)
				}
			}
			h.Del("Content-Length")
			refuse(http.StatusBadGateway, outcome, "the upstream answer was refused")
			return
		}
		// Headers are out: break the connection so the browser sees a failed response rather
		// than a silently truncated one.
		rec.Status = resp.StatusCode
		panic(http.ErrAbortHandler)
	}
	flusher, _ := w.(http.Flusher)
	writeOut := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		if !headerWritten {
			w.WriteHeader(resp.StatusCode)
			headerWritten = true
		}
		n, err := w.Write(b)
		sent += int64(n)
		rec.ResponseBytes = sent
		if flusher != nil {
			flusher.Flush()
		}
		return err == nil
	}
	var total int64
	for {
		n, rerr := resp.Body.Read(buf)
		total += int64(n)
		if total > p.cfg.MaxResponseBytes {
			abort(OutcomeTooLarge)
			return
		}
		emit, found := sc.feed(buf[:n])
		if found {
			abort(OutcomeEcho)
			return
		}
		if !writeOut(emit) {
			rec.Status, rec.Outcome = resp.StatusCode, OutcomeOK
			return
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if errors.Is(rerr, context.DeadlineExceeded) || isTimeout(rerr) {
				abort(OutcomeTimeout)
			} else {
				abort(OutcomeUpstreamError)
			}
			return
		}
	}
	rest, ok := sc.end()
	if !ok {
		abort(OutcomeEcho)
		return
	}
	writeOut(rest)
	if !headerWritten {
		w.WriteHeader(resp.StatusCode)
	}
	rec.Status, rec.Outcome = resp.StatusCode, OutcomeOK
}

// outbound builds the upstream request: the secret's host, the caller's path and query, the
// caller's harmless headers, and the value injected where the secret says.
func (p *Proxy) outbound(ctx context.Context, r *http.Request, c Call, sec Secret, body []byte) (*http.Request, error) {
	u := &url.URL{Scheme: "https", Host: sec.UpstreamHost, Path: "/", RawPath: ""}
	if c.Path != "" {
		raw := c.Path
		dec, err := url.PathUnescape(raw)
		if err != nil {
			return nil, err
		}
		u.Path, u.RawPath = dec, raw
	}
	q := r.URL.Query()
	switch sec.Kind {
	case InjectQuery:
		if sec.QueryParam == "" {
			return nil, errors.New("query injection without a parameter")
		}
		q.Del(sec.QueryParam)
		q.Set(sec.QueryParam, sec.Value.Reveal())
	case InjectHeader:
		if sec.HeaderName == "" {
			return nil, errors.New("header injection without a header")
		}
	default:
		return nil, errors.New("unknown injection")
	}
	u.RawQuery = q.Encode()
	if len(q) == 0 {
		u.RawQuery = ""
	}
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	drop := connectionListed(r.Header)
	for k, vs := range r.Header {
		if passRequestHeader(k) && !drop[http.CanonicalHeaderKey(k)] {
			out.Header[k] = vs
		}
	}
	if sec.Kind == InjectHeader {
		out.Header.Set(sec.HeaderName, sec.Prefix+sec.Value.Reveal())
	}
	return out, nil
}

// allow takes a token from the app's rate limiter.
func (p *Proxy) allow(app uuid.UUID) bool {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.limiters[app]
	if !ok {
		if len(p.limiters) >= 10000 {
			// Forget apps idle for a minute (their buckets are full again by then anyway).
			for id, x := range p.limiters {
				if now.Sub(x.used) > time.Minute {
					delete(p.limiters, id)
				}
			}
		}
		l = &limiter{l: rate.NewLimiter(rate.Limit(p.cfg.RatePerSecond), p.cfg.Burst)}
		p.limiters[app] = l
	}
	l.used = now
	return l.l.AllowN(now, 1)
}

// cleanPath accepts the escaped rest of a proxy path: empty, or "/" followed by segments with
// no dot segments, no backslashes, no encoded slashes, and no control characters.
func cleanPath(p string) bool {
	if p == "" {
		return true
	}
	if len(p) > 2048 || p[0] != '/' {
		return false
	}
	lower := strings.ToLower(p)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(p, "\\") ||
		strings.Contains(lower, "%2e") {
		return false
	}
	dec, err := url.PathUnescape(p)
	if err != nil {
		return false
	}
	for _, seg := range strings.Split(dec[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	for i := 0; i < len(dec); i++ {
		if dec[i] < 0x20 || dec[i] == 0x7f {
			return false
		}
	}
	return true
}

// readBody reads the request body if it fits in max bytes.
func readBody(r *http.Request, max int64) ([]byte, bool) {
	if r.ContentLength > max {
		return nil, false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil || int64(len(b)) > max {
		return nil, false
	}
	return b, true
}

// hopByHop are the headers that describe one connection, not the message (RFC 9110 7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// requestDrop are browser headers that must not reach an upstream: credentials for the
// sandbox origin (cookies, the browser's own Authorization), what would identify the viewer
// or the app's origin, and what the transport sets itself.
var requestDrop = map[string]bool{
	"Cookie": true, "Authorization": true, "Host": true, "Origin": true, "Referer": true,
	"Forwarded": true, "Via": true, "X-Real-Ip": true, "Accept-Encoding": true, "Content-Length": true,
	"Expect": true, "Priority": true,
}

func passRequestHeader(k string) bool {
	k = http.CanonicalHeaderKey(k)
	if hopByHop[k] || requestDrop[k] {
		return false
	}
	for _, prefix := range []string{"Sec-", "Proxy-", "X-Forwarded-", "X-Forge-", "Cf-"} {
		if strings.HasPrefix(k, prefix) {
			return false
		}
	}
	return true
}

// connectionListed returns the headers a Connection header names (hop-by-hop as well).
func connectionListed(h http.Header) map[string]bool {
	out := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out[http.CanonicalHeaderKey(f)] = true
			}
		}
	}
	return out
}

// responsePass are the upstream response headers a browser script may see. Everything else
// is dropped: an upstream must not set cookies on the app's origin, grant CORS, replace the
// sandbox's security headers, install reporting endpoints or redirect.
var responsePass = map[string]bool{
	"Content-Type": true, "Content-Language": true, "Content-Disposition": true, "Etag": true,
	"Last-Modified": true, "Retry-After": true, "Date": true, "Request-Id": true,
}

var responseDropX = map[string]bool{
	"X-Frame-Options": true, "X-Content-Type-Options": true, "X-Xss-Protection": true,
	"X-Dns-Prefetch-Control": true, "X-Permitted-Cross-Domain-Policies": true,
}

func passResponseHeader(k string) bool {
	k = http.CanonicalHeaderKey(k)
	if responsePass[k] {
		return true
	}
	lower := strings.ToLower(k)
	switch {
	case strings.HasPrefix(lower, "x-forwarded-") || strings.HasPrefix(lower, "x-forge-") || responseDropX[k]:
		return false
	case strings.HasPrefix(lower, "x-"), strings.HasPrefix(lower, "ratelimit"),
		strings.HasPrefix(lower, "openai-"), strings.HasPrefix(lower, "anthropic-"):
		return true
	}
	return false
}

// patterns are the forms in which an echoing upstream would return the value: as sent, URL
// encoded (a query value) and JSON-escaped.
func patterns(v secret.Value) [][]byte {
	raw := v.Reveal()
	if raw == "" {
		return nil
	}
	forms := []string{raw, url.QueryEscape(raw)}
	if j, err := json.Marshal(raw); err == nil {
		forms = append(forms, string(j[1:len(j)-1]))
	}
	var out [][]byte
	seen := map[string]bool{}
	for _, f := range forms {
		if !seen[f] {
			seen[f] = true
			out = append(out, []byte(f))
		}
	}
	return out
}

func containsAny(b []byte, pats [][]byte) bool {
	for _, p := range pats {
		if bytes.Contains(b, p) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
