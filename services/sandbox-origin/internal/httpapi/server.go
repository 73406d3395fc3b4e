// Package httpapi is the browser-facing HTTPS server of the sandbox origin: every app at its
// own origin under the sandbox domain, selected by the Host header alone, with the access
// rules of origin applied to every request, strict headers on every response, the exchange of
// view tickets and share tokens for origin-scoped cookies, and the secret proxy path.
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/appcache"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
)

// Query parameters of a first request: a view ticket or a share token, exchanged for a cookie.
const (
	ParamTicket = "forge_ticket"
	ParamShare  = "forge_share"
)

// ProxyPrefix is the path of the secret proxy on every app origin.
const ProxyPrefix = "/__forge/proxy/"

// reservedPrefix is the sandbox's own namespace on an app origin; no app file is served there.
const reservedPrefix = "/__forge/"

// Tickets redeems view tickets; Redeem removes the ticket, so a second redemption finds none.
type Tickets interface {
	Redeem(ctx context.Context, appOwner owner.ID, hash [sha256.Size]byte) (origin.Ticket, error)
}

// Config configures a Server.
type Config struct {
	Domain        origin.Domain
	ConsoleOrigin string
	Cache         *appcache.Cache
	Sealer        *origin.Sealer
	Tickets       Tickets
	Proxy         *proxy.Proxy
	// GrantTTL is the lifetime of an origin cookie.
	GrantTTL time.Duration
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server serves the app origins.
type Server struct {
	cfg     Config
	headers http.Header
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Cache == nil || cfg.Sealer == nil || cfg.Tickets == nil || cfg.Proxy == nil || cfg.ConsoleOrigin == "" || cfg.GrantTTL <= 0 {
		return nil, errors.New("httpapi: incomplete configuration")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{cfg: cfg, headers: securityHeaders(cfg.ConsoleOrigin)}, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Logger.Enabled(r.Context(), slog.LevelDebug) {
		// The path only: a first request's query holds a ticket or a share token.
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.cfg.Logger.DebugContext(r.Context(), "http request", "method", r.Method, "host", r.Host,
				"path", r.URL.Path, "status", rec.status, "fetch_site", r.Header.Get("Sec-Fetch-Site"),
				"jar_entries", len(r.Cookies()))
		}()
		w = rec
	}
	apply(w.Header(), s.headers)
	app, err := s.cfg.Domain.App(r.Host)
	if err != nil {
		notFound(w)
		return
	}
	isProxy := strings.HasPrefix(r.URL.Path, ProxyPrefix)
	if !isProxy && strings.HasPrefix(r.URL.Path, reservedPrefix) {
		notFound(w)
		return
	}
	ctx := r.Context()
	e, err := s.cfg.Cache.Get(ctx, app)
	if errors.Is(err, appcache.ErrNotFound) {
		notFound(w)
		return
	}
	if err != nil {
		s.unavailable(ctx, w, "fetching an app failed", err)
		return
	}
	if r.URL.RawQuery != "" && strings.Contains(r.URL.RawQuery, "forge_") {
		q := r.URL.Query()
		if q.Has(ParamTicket) || q.Has(ParamShare) {
			s.exchange(w, r, e, q)
			return
		}
	}
	creds, caller, err := s.credentials(ctx, r, e)
	if err != nil {
		s.unavailable(ctx, w, "checking access failed", err)
		return
	}
	if !origin.MayOpen(e.App.Visibility, creds) {
		notFound(w)
		return
	}
	if isProxy {
		name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), ProxyPrefix), "/")
		if rest != "" || strings.HasSuffix(r.URL.EscapedPath(), "/") {
			rest = "/" + rest
		}
		s.cfg.Proxy.Serve(w, r, proxy.Call{
			App: app, Owner: e.App.Owner, Origin: s.cfg.Domain.Origin(app), Caller: caller,
			SecretName: name, Path: rest,
		})
		return
	}
	s.serveFile(w, r, e)
}

// credentials checks the request's origin cookies against apps (through the entry's memory).
func (s *Server) credentials(ctx context.Context, r *http.Request, e *appcache.Entry) (origin.Credentials, string, error) {
	var c origin.Credentials
	switch e.App.Visibility {
	case origin.VisibilityPublic:
		return c, "public", nil
	case origin.VisibilityLink, origin.VisibilityPrivate:
	default:
		return c, "", nil
	}
	now := s.cfg.Now()
	for _, ck := range r.CookiesNamed(origin.ViewCookie) {
		g, err := s.cfg.Sealer.Open(origin.GrantView, e.App.ID, ck.Value)
		if err != nil {
			continue
		}
		ok, err := e.ViewerAllowed(ctx, g.Viewer)
		if err != nil {
			return c, "", err
		}
		if ok {
			c.Viewer = true
			return c, "viewer:" + g.Viewer.String(), nil
		}
	}
	if e.App.Visibility != origin.VisibilityLink {
		return c, "", nil
	}
	for _, ck := range r.CookiesNamed(origin.ShareCookie) {
		g, err := s.cfg.Sealer.Open(origin.GrantShare, e.App.ID, ck.Value)
		if err != nil {
			continue
		}
		ok, _, err := e.ShareAllowed(ctx, g.Token, now)
		if err != nil {
			return c, "", err
		}
		if ok {
			c.Share = true
			return c, "share-link", nil
		}
	}
	return c, "", nil
}

// exchange turns a view ticket or share token in the query of a first request into an origin
// cookie, then redirects to the same URL without it, so the credential leaves the address bar
// and the history at once. Anything wrong gets the same plain 404 as an unknown app.
func (s *Server) exchange(w http.ResponseWriter, r *http.Request, e *appcache.Entry, q url.Values) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		notFound(w)
		return
	}
	ctx := r.Context()
	now := s.cfg.Now()
	var g origin.Grant
	if t := q.Get(ParamTicket); q.Has(ParamTicket) {
		hash, err := origin.HashTicket(t)
		if err != nil {
			notFound(w)
			return
		}
		tk, err := s.cfg.Tickets.Redeem(ctx, e.App.Owner, hash)
		if errors.Is(err, origin.ErrNoTicket) {
			notFound(w)
			return
		}
		if err != nil {
			s.unavailable(ctx, w, "redeeming a view ticket failed", err)
			return
		}
		if tk.App != e.App.ID || !now.Before(tk.Expiry) {
			notFound(w)
			return
		}
		ok, err := e.ViewerAllowed(ctx, tk.Viewer)
		if err != nil {
			s.unavailable(ctx, w, "checking a viewer failed", err)
			return
		}
		if !ok {
			notFound(w)
			return
		}
		g = origin.Grant{Kind: origin.GrantView, App: e.App.ID, Viewer: tk.Viewer, Expiry: now.Add(s.cfg.GrantTTL)}
	} else {
		tok := q.Get(ParamShare)
		if tok == "" || len(tok) > 128 || !origin.MayOpen(e.App.Visibility, origin.Credentials{Share: true}) {
			notFound(w)
			return
		}
		ok, exp, err := e.ShareAllowed(ctx, secret.New(tok), now)
		if err != nil {
			s.unavailable(ctx, w, "checking a share token failed", err)
			return
		}
		if !ok {
			notFound(w)
			return
		}
		if limit := now.Add(s.cfg.GrantTTL); limit.Before(exp) {
			exp = limit
		}
		g = origin.Grant{Kind: origin.GrantShare, App: e.App.ID, Token: secret.New(tok), Expiry: exp}
	}
	name, value, err := s.cfg.Sealer.Seal(g)
	if err != nil {
		s.unavailable(ctx, w, "sealing a grant failed", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: int(g.Expiry.Sub(now).Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteNoneMode, Partitioned: true,
	})
	q.Del(ParamTicket)
	q.Del(ParamShare)
	loc := r.URL.EscapedPath()
	if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
		// Never a scheme-relative Location: it would leave the app's origin.
		loc = "/"
	}
	if len(q) > 0 {
		loc += "?" + q.Encode()
	}
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusSeeOther)
}

// serveFile answers with a file of the served version.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, e *appcache.Entry) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p == "" || strings.HasSuffix(p, "/") {
		p += "index.html"
	}
	f, ok := e.App.Files[p]
	if !ok {
		notFound(w)
		return
	}
	h := w.Header()
	h.Set("Content-Type", origin.ContentType(p))
	h.Set("Etag", f.ETag)
	if e.App.Visibility == origin.VisibilityPublic {
		h.Set("Cache-Control", "no-cache")
	} else {
		// Revalidated on every use, so a revoked viewer is refused instead of served from a
		// cache; never kept by a shared cache.
		h.Set("Cache-Control", "private, no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.Content))
}

func notFound(w http.ResponseWriter) { plain(w, http.StatusNotFound, "not found") }

func plain(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Del("Etag")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

func (s *Server) unavailable(ctx context.Context, w http.ResponseWriter, msg string, err error) {
	s.cfg.Logger.WarnContext(ctx, msg, "error", err)
	w.Header().Set("Retry-After", "1")
	plain(w, http.StatusServiceUnavailable, "temporarily unavailable")
}

// Run serves HTTPS on addr with the edge certificate until ctx ends, then shuts down
// gracefully within grace.
func (s *Server) Run(ctx context.Context, addr string, certs *mtls.ServingSource, grace time.Duration) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, lis, certs, grace)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, lis net.Listener, certs *mtls.ServingSource, grace time.Duration) error {
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         certs.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		// Longer than the proxy's own bound, which ends slow upstreams first.
		WriteTimeout:   5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(lis, "", "") }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// statusRecorder remembers the status of a response, for the debug log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Flush passes streaming through (the proxy flushes server-sent events).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
