// Package edge is the browser-facing HTTP server of the suite: the JSON API of every service
// (grpc-gateway, dialing each service over mTLS), the sign-in and sign-out routes, the
// OpenAPI documents and, in development mode, the development identity provider.
//
// Every request passes, in this order (ServeHTTP): a request ID and the security headers on
// the response; the access log (never a token, a cookie or a query string); CORS (the console
// origin only); the per-address rate limit; then, for API routes, the credential (401 before
// any service is called unless the route is anonymous), the console-Origin check for
// cookie-authenticated requests that change state, the pending-deletion gate, the per-tenant
// rate limit and the body limit (413). Only then is the verified owner put in the request
// context and the request handed to grpc-gateway, with the credential headers removed so no
// service ever sees a person's token.
package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forgeapps/backbone/pkg/gatewaymux"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
)

// Paths of the edge's own routes.
const (
	SignInPath  = "/v1/auth/signin"
	SignOutPath = "/v1/auth/signout"
	DocsPrefix  = "/openapi/"
	DevIdPPath  = "/dev/idp/"
)

// maxKeys bounds each rate limiter's table.
const maxKeys = 100000

// Config is the edge's policy.
type Config struct {
	ConsoleOrigin  string
	IPRate         float64
	IPBurst        int
	TenantRate     float64
	TenantBurst    int
	MaxBodyBytes   int64
	MaxUploadBytes int64
	Logger         *slog.Logger
	Now            func() time.Time
	// SignInBodyLimit bounds the sign-in body; 0 means 64 KiB.
	SignInBodyLimit int64
}

// Deps are the edge's collaborators.
type Deps struct {
	Auth *auth.Authenticator
	// Sessions is the tenant's session service (sign-out revokes through it).
	Sessions tenantv1.SessionServiceClient
	// Backends maps a workload name to its connection; services without one are not served.
	Backends map[string]grpc.ClientConnInterface
	// Docs are the OpenAPI documents (apidocs.FS()); nil serves none.
	Docs fs.FS
	// DevIdP is the development identity provider's handler; nil when it is off.
	DevIdP http.Handler
}

// Edge is the HTTP handler of the gateway.
type Edge struct {
	cfg      Config
	log      *slog.Logger
	auth     *auth.Authenticator
	sessions tenantv1.SessionServiceClient
	mux      *runtime.ServeMux
	router   *router
	routes   []Route
	byIP     *limiter
	byTenant *limiter
	docs     http.Handler
	devIdP   http.Handler
	handler  http.Handler
}

// New registers every served API on a grpc-gateway mux and returns the edge. ctx bounds the
// registrations (grpc-gateway ties nothing to it after they return for client handlers).
func New(ctx context.Context, cfg Config, deps Deps) (*Edge, error) {
	if deps.Auth == nil || deps.Sessions == nil {
		return nil, errors.New("edge: an authenticator and the tenant session client are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SignInBodyLimit == 0 {
		cfg.SignInBodyLimit = 64 << 10
	}
	e := &Edge{
		cfg:      cfg,
		log:      cfg.Logger,
		auth:     deps.Auth,
		sessions: deps.Sessions,
		mux:      gatewaymux.New(),
		byIP:     newLimiter(cfg.IPRate, cfg.IPBurst, maxKeys, cfg.Now),
		byTenant: newLimiter(cfg.TenantRate, cfg.TenantBurst, maxKeys, cfg.Now),
		devIdP:   deps.DevIdP,
	}
	apis := APIs()
	for _, name := range BackendOrder() {
		cc, ok := deps.Backends[name]
		if !ok || cc == nil {
			continue
		}
		for _, a := range apis[name] {
			if err := a.Register(ctx, e.mux, cc); err != nil {
				return nil, fmt.Errorf("edge: register %s: %w", a.Service.FullName(), err)
			}
			e.routes = append(e.routes, RoutesOf(a.Service)...)
		}
	}
	var err error
	if e.router, err = newRouter(e.routes); err != nil {
		return nil, err
	}
	if deps.Docs != nil {
		e.docs = docsHandler(deps.Docs)
	}
	e.handler = gatewaymux.CORS([]string{cfg.ConsoleOrigin}, http.HandlerFunc(e.dispatch))
	return e, nil
}

// Routes lists the JSON routes served (for tests and the README).
func (e *Edge) Routes() []Route { return append([]Route(nil), e.routes...) }

// requestInfo is filled in while a request is handled and read by the access log.
type requestInfo struct {
	route    string
	owner    owner.ID
	authKind string
}

type requestInfoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	if i, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

// ServeHTTP handles one request.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := e.cfg.Now()
	rid := newRequestID()
	h := w.Header()
	h.Set("X-Request-Id", rid)
	setSecurityHeaders(h)
	rec := &recorder{ResponseWriter: w}
	info := &requestInfo{authKind: "none"}
	ctx := context.WithValue(owner.WithRequestID(r.Context(), rid), requestInfoKey{}, info)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			e.log.ErrorContext(ctx, "panic in the edge", slog.String("request_id", rid),
				slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			if !rec.wrote {
				writeStatus(rec, http.StatusInternalServerError, codes.Internal, "internal error (request "+rid+")")
			}
		}
		e.accessLog(ctx, r, rec, info, rid, start)
	}()
	e.handler.ServeHTTP(rec, r.WithContext(ctx))
}

func (e *Edge) accessLog(ctx context.Context, r *http.Request, rec *recorder, info *requestInfo, rid string, start time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("request_id", rid),
		slog.String("method", r.Method),
		// The path only: query strings may carry page tokens, and nothing of a credential is
		// ever in a path.
		slog.String("path", r.URL.Path),
		slog.String("route", info.route),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", e.cfg.Now().Sub(start)),
		slog.String("client", clientAddr(r)),
		slog.String("auth", info.authKind),
	}
	if !info.owner.IsZero() {
		attrs = append(attrs, slog.String("owner_id", info.owner.String()))
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "http request", attrs...)
}

// dispatch runs behind CORS.
func (e *Edge) dispatch(w http.ResponseWriter, r *http.Request) {
	if ok, wait := e.byIP.allow(clientAddr(r)); !ok {
		tooManyRequests(w, wait, "too many requests from this address")
		return
	}
	info := infoFrom(r.Context())
	switch p := r.URL.Path; {
	case p == SignInPath:
		info.route = SignInPath
		e.signIn(w, r)
	case p == SignOutPath:
		info.route = SignOutPath
		e.signOut(w, r)
	case strings.HasPrefix(p, DocsPrefix) && e.docs != nil:
		info.route = DocsPrefix
		e.docs.ServeHTTP(w, r)
	case strings.HasPrefix(p, DevIdPPath) && e.devIdP != nil:
		info.route = DevIdPPath
		e.devIdP.ServeHTTP(w, r)
	default:
		e.api(w, r)
	}
}

// api serves a grpc-gateway route.
func (e *Edge) api(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info := infoFrom(ctx)
	route, ok := e.router.match(r)
	if !ok {
		// No route: grpc-gateway answers 404 or 405 as JSON; nothing is called.
		gatewaymux.StripClientHeaders(r)
		e.mux.ServeHTTP(w, r)
		return
	}
	info.route = route.HTTPMethod + " " + route.Template
	cred, has, err := auth.FromRequest(r)
	if route.Ownerless {
		// The service runs the method without an owner and refuses one asserted: whatever
		// credential came along is not the request's credential, so it is neither checked
		// nor forwarded (it is stripped below like every other).
		cred, has, err = auth.Credential{}, false, nil
	}
	switch {
	case err != nil:
		e.refuseCredential(w, cred, status.Error(codes.Unauthenticated, "invalid credential"))
		return
	case !has && !route.Anonymous:
		unauthenticated(w, "authentication required: send Authorization: Bearer <session token or ID token>, or sign in (POST "+SignInPath+")")
		return
	}
	if has {
		info.authKind = authKindOf(cred)
		if cred.FromCookie && changesState(r.Method) && !e.fromConsole(r) {
			writeStatus(w, http.StatusForbidden, codes.PermissionDenied,
				"a request authenticated by the session cookie that changes state must come from the console origin")
			return
		}
		p, err := e.auth.Authenticate(ctx, cred)
		if err != nil {
			e.refuseCredential(w, cred, err)
			return
		}
		info.owner = p.Owner.ID
		if p.PendingDeletion() && !route.DuringDeletion {
			writeStatus(w, http.StatusForbidden, codes.FailedPrecondition,
				"this account is pending deletion: only cancelling the deletion (POST /v1/deletion:cancel), reading its receipt (POST /v1/deletion-receipts:lookup) and signing out are possible")
			return
		}
		if ok, wait := e.byTenant.allow(p.Owner.ID.String()); !ok {
			tooManyRequests(w, wait, "too many requests for this account")
			return
		}
		ctx = owner.NewContext(ctx, p.Owner)
		if p.SessionID != "" {
			ctx = owner.WithSessionID(ctx, p.SessionID)
		}
	}
	if route.NoQuery && r.URL.RawQuery != "" {
		writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "this route takes no query parameters")
		return
	}
	limit := e.cfg.MaxBodyBytes
	if route.Upload {
		limit = e.cfg.MaxUploadBytes
	}
	if !limitBody(r, limit) {
		tooLarge(w, limit)
		return
	}
	gatewaymux.StripClientHeaders(r)
	e.mux.ServeHTTP(w, r.WithContext(ctx))
}

// refuseCredential answers a refused credential; a refused cookie is also cleared, so a
// browser stops sending a session that will never work again.
func (e *Edge) refuseCredential(w http.ResponseWriter, cred auth.Credential, err error) {
	if cred.FromCookie && status.Code(err) == codes.Unauthenticated {
		clearSessionCookie(w)
	}
	writeError(w, err)
}

func (e *Edge) fromConsole(r *http.Request) bool {
	origins := r.Header.Values("Origin")
	return len(origins) == 1 && origins[0] == e.cfg.ConsoleOrigin
}

func authKindOf(c auth.Credential) string {
	switch {
	case c.FromCookie:
		return "cookie"
	case c.Kind == auth.KindSession:
		return "bearer-session"
	case c.Kind == auth.KindIDToken:
		return "bearer-id-token"
	}
	return "invalid"
}

func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// limitBody enforces the body limit of a route: a declared length over it is refused before
// reading; a body of unknown length is read up to the limit (and refused past it). It
// reports false when the body is too large.
func limitBody(r *http.Request, limit int64) bool {
	if r.ContentLength > limit {
		return false
	}
	if r.ContentLength >= 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil || int64(len(buf)) > limit {
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	return true
}

// setSecurityHeaders puts the headers every API response carries: nothing is cached or
// sniffed, nothing is framed, and a JSON body can never run as a document.
func setSecurityHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Strict-Transport-Security", "max-age=63072000")
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clientAddr is the peer's IP. X-Forwarded-For is not trusted: the edge terminates TLS
// itself (a load balancer in front must pass TCP through).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// recorder captures the status and size of a response for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets streamed downloads (google.api.HttpBody streams) reach the client as they come.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
