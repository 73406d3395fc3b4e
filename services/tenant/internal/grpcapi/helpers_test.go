package grpcapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/tenant/internal/tenanttest"
)

// The issuer every test identity comes from.
const testIssuer = "https://idp.test"

// suite is one tenant service under test with a client per calling workload.
type suite struct {
	*tenanttest.Server
	sessions tenantv1.SessionServiceClient
	accounts tenantv1.AccountServiceClient
	credits  tenantv1.CreditServiceClient // as the gateway
	builder  tenantv1.CreditServiceClient
	billing  tenantv1.CreditServiceClient
	plans    tenantv1.TenantAdminServiceClient // as billing
	admin    tenantv1.TenantAdminServiceClient // as data-lifecycle
	apps     tenantv1.TenantAdminServiceClient
	edge     tenantv1.TenantAdminServiceClient // as the gateway
}

func newSuite(t *testing.T, opts tenanttest.Options) *suite {
	t.Helper()
	srv := tenanttest.New(t, opts).Serve(t)
	gw := srv.Conn(workload.Gateway)
	return &suite{
		Server:   srv,
		sessions: tenantv1.NewSessionServiceClient(gw),
		accounts: tenantv1.NewAccountServiceClient(gw),
		credits:  tenantv1.NewCreditServiceClient(gw),
		builder:  tenantv1.NewCreditServiceClient(srv.Conn(workload.Builder)),
		billing:  tenantv1.NewCreditServiceClient(srv.Conn(workload.Billing)),
		plans:    tenantv1.NewTenantAdminServiceClient(srv.Conn(workload.Billing)),
		admin:    tenantv1.NewTenantAdminServiceClient(srv.Conn(workload.DataLifecycle)),
		apps:     tenantv1.NewTenantAdminServiceClient(srv.Conn(workload.Apps)),
		edge:     tenantv1.NewTenantAdminServiceClient(gw),
	}
}

// person is a signed-in tenant as the edge sees it.
type person struct {
	id        owner.ID
	token     string
	sessionID string
	email     string
	subject   string
}

func randomHex(t testing.TB) string {
	t.Helper()
	var b [8]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return hex.EncodeToString(b[:])
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// signUp creates a new tenant through SignIn with a fresh identity.
func (s *suite) signUp(t testing.TB, plan tenantv1.Plan, region string) person {
	t.Helper()
	sub := "sub-" + randomHex(t)
	email := sub + "@example.com"
	resp, err := s.sessions.SignIn(ctxT(t), signInReq(sub, email, plan, region))
	require.NoError(t, err)
	require.True(t, resp.GetCreated())
	id, err := owner.Parse(resp.GetAccount().GetOwnerId())
	require.NoError(t, err)
	return person{id: id, token: resp.GetSessionToken(), sessionID: resp.GetSession().GetSessionId(), email: email, subject: sub}
}

func signInReq(subject, email string, plan tenantv1.Plan, region string) *tenantv1.SignInRequest {
	return &tenantv1.SignInRequest{
		Identity: &tenantv1.VerifiedIdentity{Issuer: testIssuer, Subject: subject, Email: email, EmailVerified: true},
		Plan:     plan, HomeRegion: region, UserAgent: "test-agent/1.0",
	}
}

// as returns a context acting for p with its session, as the edge would call.
func (s *suite) as(t testing.TB, p person) context.Context {
	t.Helper()
	return s.AsOwner(ctxT(t), p.id, p.sessionID)
}

// grant gives p credits through billing.
func (s *suite) grant(t testing.TB, p person, amount int64) {
	t.Helper()
	_, err := s.billing.GrantCredits(ctxT(t), &tenantv1.GrantCreditsRequest{
		OwnerId: p.id.String(), Amount: amount, Reason: "top-up", IdempotencyKey: "grant-" + randomHex(t),
	})
	require.NoError(t, err)
}

// requireCode checks a gRPC error's code and returns its status.
func requireCode(t testing.TB, err error, code codes.Code) *status.Status {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status: %v", err)
	require.Equal(t, code, st.Code(), "status: %v", st)
	return st
}

// errorInfo returns the ErrorInfo detail of a status, if any.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// sameAnswer checks that two errors are indistinguishable to a client: code, message and
// details.
func sameAnswer(t testing.TB, want, got error) {
	t.Helper()
	ws, _ := status.FromError(want)
	gs, _ := status.FromError(got)
	require.Equal(t, ws.Code(), gs.Code())
	require.Equal(t, ws.Message(), gs.Message())
	require.Equal(t, len(ws.Details()), len(gs.Details()))
}

func tokenReq(tok string) *tenantv1.AuthenticateRequest {
	return &tenantv1.AuthenticateRequest{Credential: &tenantv1.AuthenticateRequest_SessionToken{SessionToken: tok}}
}

func identityReq(issuer, subject, email string) *tenantv1.AuthenticateRequest {
	return &tenantv1.AuthenticateRequest{Credential: &tenantv1.AuthenticateRequest_Identity{
		Identity: &tenantv1.VerifiedIdentity{Issuer: issuer, Subject: subject, Email: email, EmailVerified: true},
	}}
}
