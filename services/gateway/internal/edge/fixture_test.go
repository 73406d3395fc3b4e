package edge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/apidocs"
	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/fault"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/telemetry"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
	"github.com/forgeapps/backbone/services/gateway/internal/edge"
	"github.com/forgeapps/backbone/services/gateway/internal/testidp"
)

// The unit tests of the edge run it in-process behind a real TLS listener, in front of a
// scripted tenant service (and a scripted deletion service) served by grpctest: real mTLS,
// the real interceptor chain and workload table, so the owner the scripted service sees is
// exactly what the edge asserted. The tests against the real tenant binary are in
// services/gateway/integration.

const consoleOrigin = "https://console.test"

// call is one call a scripted service received.
type call struct {
	method    string
	owner     owner.ID
	sessionID string
	md        metadata.MD
	body      any
}

type fakeSession struct {
	id      string
	owner   owner.ID
	revoked bool
}

// fakeTenant scripts the tenant service's edge contract (see tenant.proto).
type fakeTenant struct {
	tenantv1.UnimplementedSessionServiceServer
	tenantv1.UnimplementedAccountServiceServer
	tenantv1.UnimplementedCreditServiceServer

	mu         sync.Mutex
	sessions   map[string]*fakeSession // by token
	identities map[string]owner.ID     // by issuer|subject
	statuses   map[owner.ID]tenantv1.AccountStatus
	authCalls  int
	signIns    int
	calls      []call
}

func newFakeTenant() *fakeTenant {
	return &fakeTenant{sessions: map[string]*fakeSession{}, identities: map[string]owner.ID{}, statuses: map[owner.ID]tenantv1.AccountStatus{}}
}

func (f *fakeTenant) record(ctx context.Context, method string, body any) owner.ID {
	o, _ := owner.FromContext(ctx)
	sid, _ := owner.SessionIDFromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{method: method, owner: o.ID, sessionID: sid, md: md.Copy(), body: body})
	return o.ID
}

func (f *fakeTenant) Authenticate(_ context.Context, req *tenantv1.AuthenticateRequest) (*tenantv1.AuthenticateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authCalls++
	invalid := fault.Unauthenticated("invalid session")
	switch c := req.GetCredential().(type) {
	case *tenantv1.AuthenticateRequest_SessionToken:
		s, ok := f.sessions[c.SessionToken]
		if !ok || s.revoked {
			return nil, invalid
		}
		return &tenantv1.AuthenticateResponse{OwnerId: s.owner.String(), HomeRegion: "us-east", Status: f.statuses[s.owner],
			SessionId: s.id, ExpireTime: timestamppb.New(time.Now().Add(time.Hour))}, nil
	case *tenantv1.AuthenticateRequest_Identity:
		id, ok := f.identities[c.Identity.GetIssuer()+"|"+c.Identity.GetSubject()]
		if !ok {
			return nil, invalid
		}
		return &tenantv1.AuthenticateResponse{OwnerId: id.String(), HomeRegion: "us-east", Status: f.statuses[id]}, nil
	}
	return nil, invalid
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "fgs_" + base64.RawURLEncoding.EncodeToString(b)
}

func (f *fakeTenant) SignIn(_ context.Context, req *tenantv1.SignInRequest) (*tenantv1.SignInResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signIns++
	key := req.GetIdentity().GetIssuer() + "|" + req.GetIdentity().GetSubject()
	id, ok := f.identities[key]
	if !ok {
		id = owner.New()
		f.identities[key] = id
		f.statuses[id] = tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE
	}
	tok := newToken()
	s := &fakeSession{id: uuid.NewString(), owner: id}
	f.sessions[tok] = s
	return &tenantv1.SignInResponse{
		SessionToken: tok,
		Session:      &tenantv1.Session{SessionId: s.id, CreateTime: timestamppb.Now(), ExpireTime: timestamppb.New(time.Now().Add(time.Hour))},
		Account:      &tenantv1.Account{OwnerId: id.String(), Email: req.GetIdentity().GetEmail(), Plan: tenantv1.Plan_PLAN_FREE, HomeRegion: "us-east", Status: f.statuses[id]},
		Created:      !ok,
	}, nil
}

func (f *fakeTenant) RevokeSession(ctx context.Context, req *tenantv1.RevokeSessionRequest) (*tenantv1.RevokeSessionResponse, error) {
	o := f.record(ctx, "RevokeSession", req)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if s.id == req.GetSessionId() && s.owner == o && !s.revoked {
			s.revoked = true
			return &tenantv1.RevokeSessionResponse{}, nil
		}
	}
	return nil, fault.NotFound("session not found")
}

func (f *fakeTenant) RevokeAllSessions(ctx context.Context, req *tenantv1.RevokeAllSessionsRequest) (*tenantv1.RevokeAllSessionsResponse, error) {
	o := f.record(ctx, "RevokeAllSessions", req)
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int32(0)
	for _, s := range f.sessions {
		if s.owner == o && !s.revoked {
			s.revoked = true
			n++
		}
	}
	return &tenantv1.RevokeAllSessionsResponse{Revoked: n}, nil
}

func (f *fakeTenant) GetAccount(ctx context.Context, req *tenantv1.GetAccountRequest) (*tenantv1.GetAccountResponse, error) {
	o := f.record(ctx, "GetAccount", req)
	return &tenantv1.GetAccountResponse{Account: &tenantv1.Account{OwnerId: o.String(), HomeRegion: "us-east"}}, nil
}

func (f *fakeTenant) UpdateAccount(ctx context.Context, req *tenantv1.UpdateAccountRequest) (*tenantv1.UpdateAccountResponse, error) {
	o := f.record(ctx, "UpdateAccount", req)
	return &tenantv1.UpdateAccountResponse{Account: &tenantv1.Account{OwnerId: o.String(), DisplayName: req.GetDisplayName()}}, nil
}

func (f *fakeTenant) GetCreditBalance(ctx context.Context, req *tenantv1.GetCreditBalanceRequest) (*tenantv1.GetCreditBalanceResponse, error) {
	f.record(ctx, "GetCreditBalance", req)
	return &tenantv1.GetCreditBalanceResponse{}, nil
}

func (f *fakeTenant) setStatus(id owner.ID, s tenantv1.AccountStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[id] = s
}

func (f *fakeTenant) callsOf(method string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeTenant) allCalls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeTenant) authenticateCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authCalls
}

func (f *fakeTenant) signInCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.signIns
}

// tenantTable is the workload table the tenant service declares for what the edge calls.
func tenantTable() authz.Table {
	return authz.Table{
		tenantv1.SessionService_SignIn_FullMethodName:            authz.SystemMethod(workload.Gateway),
		tenantv1.SessionService_Authenticate_FullMethodName:      authz.SystemMethod(workload.Gateway),
		tenantv1.SessionService_ListSessions_FullMethodName:      authz.Owner(workload.Gateway),
		tenantv1.SessionService_RevokeSession_FullMethodName:     authz.Owner(workload.Gateway),
		tenantv1.SessionService_RevokeAllSessions_FullMethodName: authz.Owner(workload.Gateway),
		tenantv1.AccountService_GetAccount_FullMethodName:        authz.Owner(workload.Gateway),
		tenantv1.AccountService_UpdateAccount_FullMethodName:     authz.Owner(workload.Gateway),
		tenantv1.CreditService_GetCreditBalance_FullMethodName:   authz.Owner(workload.Gateway),
		tenantv1.CreditService_ListCreditEntries_FullMethodName:  authz.Owner(workload.Gateway),
		tenantv1.CreditService_GrantCredits_FullMethodName:       authz.SystemMethod(workload.Billing),
		tenantv1.CreditService_DebitCredits_FullMethodName:       authz.Owner(workload.Builder),
	}
}

// fakeDeletion scripts the deletion routes of data-lifecycle.
type fakeDeletion struct {
	lifecyclev1.UnimplementedDeletionServiceServer
	tenant *fakeTenant
}

func (f *fakeDeletion) CancelDeletion(ctx context.Context, req *lifecyclev1.CancelDeletionRequest) (*lifecyclev1.CancelDeletionResponse, error) {
	f.tenant.record(ctx, "CancelDeletion", req)
	return &lifecyclev1.CancelDeletionResponse{}, nil
}

func (f *fakeDeletion) RequestDeletion(ctx context.Context, req *lifecyclev1.RequestDeletionRequest) (*lifecyclev1.RequestDeletionResponse, error) {
	o := f.tenant.record(ctx, "RequestDeletion", req)
	f.tenant.setStatus(o, tenantv1.AccountStatus_ACCOUNT_STATUS_DELETION_PENDING)
	return &lifecyclev1.RequestDeletionResponse{}, nil
}

func (f *fakeDeletion) GetDeletion(ctx context.Context, req *lifecyclev1.GetDeletionRequest) (*lifecyclev1.GetDeletionResponse, error) {
	f.tenant.record(ctx, "GetDeletion", req)
	return &lifecyclev1.GetDeletionResponse{}, nil
}

func (f *fakeDeletion) GetDeletionByReceipt(ctx context.Context, req *lifecyclev1.GetDeletionByReceiptRequest) (*lifecyclev1.GetDeletionByReceiptResponse, error) {
	f.tenant.record(ctx, "GetDeletionByReceipt", req)
	return &lifecyclev1.GetDeletionByReceiptResponse{}, nil
}

// lifecycleTable is data-lifecycle's workload table for these routes (GetDeletionByReceipt is
// a system method: an asserted owner is refused).
func lifecycleTable() authz.Table {
	return authz.Table{
		lifecyclev1.DeletionService_RequestDeletion_FullMethodName:      authz.Owner(workload.Gateway),
		lifecyclev1.DeletionService_CancelDeletion_FullMethodName:       authz.Owner(workload.Gateway),
		lifecyclev1.DeletionService_GetDeletion_FullMethodName:          authz.Owner(workload.Gateway),
		lifecyclev1.DeletionService_GetDeletionByReceipt_FullMethodName: authz.SystemMethod(workload.Gateway),
	}
}

// liveFeed is a revocation feed that is always live (the real one is tested in package
// revocation).
type liveFeed struct{}

func (liveFeed) State() (uint64, bool) { return 0, true }

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type options struct {
	ipRate, tenantRate   float64
	ipBurst, tenantBurst int
	maxBody              int64
	cacheTTL             time.Duration
	now                  func() time.Time
}

type fixture struct {
	t      testing.TB
	idp    *testidp.IdP
	tenant *fakeTenant
	cache  *auth.Cache
	edge   *edge.Edge
	url    string
	client *http.Client
	logs   *syncBuffer
}

func newFixture(t testing.TB, opt options) *fixture {
	t.Helper()
	if opt.ipRate == 0 {
		opt.ipRate, opt.ipBurst = 1e6, 1e6
	}
	if opt.tenantRate == 0 {
		opt.tenantRate, opt.tenantBurst = 1e6, 1e6
	}
	if opt.maxBody == 0 {
		opt.maxBody = 64 << 10
	}
	if opt.cacheTTL == 0 {
		opt.cacheTTL = 5 * time.Second
	}
	pki := grpctest.NewPKI(t)
	ft := newFakeTenant()
	tenantAddr := pki.Start(t, grpctest.Server{Name: workload.Tenant, Table: tenantTable(), Register: func(r grpc.ServiceRegistrar) {
		tenantv1.RegisterSessionServiceServer(r, ft)
		tenantv1.RegisterAccountServiceServer(r, ft)
		tenantv1.RegisterCreditServiceServer(r, ft)
	}})
	lifecycleAddr := pki.Start(t, grpctest.Server{Name: workload.DataLifecycle, Table: lifecycleTable(), Register: func(r grpc.ServiceRegistrar) {
		lifecyclev1.RegisterDeletionServiceServer(r, &fakeDeletion{tenant: ft})
	}})
	idp := testidp.Start(t, "forge-test-console")
	verifier, err := auth.NewVerifier(auth.VerifierConfig{Issuer: idp.Issuer, Audience: idp.Audience, Client: auth.HTTPClient(idp.Roots), Now: opt.now})
	require.NoError(t, err)
	cache := auth.NewCache(auth.CacheConfig{TTL: opt.cacheTTL, MaxSize: 100, Feed: liveFeed{}, Now: opt.now})

	gw := pki.Source(t, workload.Gateway)
	dial := func(addr, name string) grpc.ClientConnInterface {
		cc, err := grpcclient.Dial(addr, gw.ClientCredentials(pki.ID(name)), nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cc.Close() })
		return edge.WatchRevocations(cc, cache)
	}
	backends := map[string]grpc.ClientConnInterface{
		workload.Tenant:        dial(tenantAddr, workload.Tenant),
		workload.DataLifecycle: dial(lifecycleAddr, workload.DataLifecycle),
	}
	logs := &syncBuffer{}
	logger := telemetry.NewLogger(logs, "gateway", slog.LevelDebug)
	sessions := tenantv1.NewSessionServiceClient(backends[workload.Tenant])
	e, err := edge.New(context.Background(), edge.Config{
		ConsoleOrigin: consoleOrigin,
		IPRate:        opt.ipRate, IPBurst: opt.ipBurst,
		TenantRate: opt.tenantRate, TenantBurst: opt.tenantBurst,
		MaxBodyBytes: opt.maxBody, MaxUploadBytes: 4 * opt.maxBody,
		Logger: logger,
		Now:    opt.now,
	}, edge.Deps{
		Auth:     auth.NewAuthenticator(sessions, verifier, cache, logger),
		Sessions: sessions,
		Backends: backends,
		Docs:     apidocs.FS(),
	})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(e)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &fixture{t: t, idp: idp, tenant: ft, cache: cache, edge: e, url: srv.URL, client: srv.Client(), logs: logs}
}

// response is an answer of the edge.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// statusCode is the google.rpc.Status code of an error body.
func (r response) statusCode(t testing.TB) codes.Code {
	t.Helper()
	m := r.json(t)
	require.Contains(t, m, "code", "an error body is a google.rpc.Status: %s", r.body)
	require.Contains(t, m, "message")
	return codes.Code(m["code"].(float64))
}

type req struct {
	method, path string
	body         string
	header       map[string]string
	bearer       string
	cookie       string
}

func (f *fixture) do(r req) response {
	f.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, f.url+r.path, body)
	require.NoError(f.t, err)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: auth.CookieName, Value: r.cookie})
	}
	resp, err := f.client.Do(hr)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// signIn signs email in through the edge and returns the session token and owner.
func (f *fixture) signIn(email string) (string, owner.ID) {
	f.t.Helper()
	tok := f.idp.Token(f.t, testidp.Claims{Email: email})
	resp := f.do(req{method: http.MethodPost, path: edge.SignInPath, body: `{"id_token": "` + tok + `"}`})
	require.Equal(f.t, http.StatusOK, resp.status, "sign-in: %s", resp.body)
	m := resp.json(f.t)
	session, _ := m["sessionToken"].(string)
	require.True(f.t, auth.IsSessionToken(session), "session token in the sign-in answer")
	acct := m["account"].(map[string]any)
	return session, owner.MustParse(acct["ownerId"].(string))
}
