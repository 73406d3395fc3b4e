package grpcapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/interceptors"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
	"github.com/forgeapps/backbone/services/tenant/internal/tenanttest"
)

func TestSignInCreatesTenantOnce(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	ctx := ctxT(t)

	first, err := s.sessions.SignIn(ctx, signInReq("alice", "Alice@Example.com", tenantv1.Plan_PLAN_PRO, ""))
	require.NoError(t, err)
	require.True(t, first.GetCreated())
	acct := first.GetAccount()
	id, err := owner.Parse(acct.GetOwnerId())
	require.NoError(t, err)
	require.Equal(t, uuid.Version(4), id.UUID().Version(), "owner_id is a random UUID")
	require.Equal(t, "Alice@Example.com", acct.GetEmail())
	require.Equal(t, tenantv1.Plan_PLAN_PRO, acct.GetPlan(), "the plan chosen at sign-up")
	require.Equal(t, "us-east", acct.GetHomeRegion(), "us-east by default")
	require.Equal(t, tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE, acct.GetStatus())
	require.NotNil(t, acct.GetCreateTime())
	require.True(t, first.GetSession().GetCurrent())
	require.Equal(t, []string{"tenant.account.created"}, s.OutboxSubjects(t, id))
	require.Equal(t, 1, s.Count(t, "region_directory", id))

	// The same (issuer, subject) finds the same tenant, whatever plan or region it asks for.
	again, err := s.sessions.SignIn(ctx, signInReq("alice", "Alice@Example.com", tenantv1.Plan_PLAN_STUDIO, "eu-west"))
	require.NoError(t, err)
	require.False(t, again.GetCreated())
	require.Equal(t, acct.GetOwnerId(), again.GetAccount().GetOwnerId())
	require.Equal(t, tenantv1.Plan_PLAN_PRO, again.GetAccount().GetPlan())
	require.NotEqual(t, first.GetSessionToken(), again.GetSessionToken())
	require.NotEqual(t, first.GetSession().GetSessionId(), again.GetSession().GetSessionId())

	// The email never finds a tenant: another subject with the same email is another tenant.
	other, err := s.sessions.SignIn(ctx, signInReq("alice-2", "Alice@Example.com", 0, ""))
	require.NoError(t, err)
	require.True(t, other.GetCreated())
	require.NotEqual(t, acct.GetOwnerId(), other.GetAccount().GetOwnerId())
	require.Equal(t, tenantv1.Plan_PLAN_FREE, other.GetAccount().GetPlan(), "free by default")
	// And the same subject from another issuer is another person.
	req := signInReq("alice", "Alice@Example.com", 0, "")
	req.Identity.Issuer = "https://other-idp.test"
	fromOther, err := s.sessions.SignIn(ctx, req)
	require.NoError(t, err)
	require.True(t, fromOther.GetCreated())

	// A changed verified email is taken over by the returning identity.
	changed, err := s.sessions.SignIn(ctx, signInReq("alice", "alice@new.example", 0, ""))
	require.NoError(t, err)
	require.Equal(t, "alice@new.example", changed.GetAccount().GetEmail())
}

func TestConcurrentFirstSignInsMakeOneTenant(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	const n = 8
	owners := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := s.sessions.SignIn(ctxT(t), signInReq("bob", "bob@example.com", 0, ""))
			errs[i] = err
			owners[i] = resp.GetAccount().GetOwnerId()
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, owners[0], owners[i])
	}
	var tenants int
	require.NoError(t, s.PG.Migrator.QueryRow(ctxT(t), `select count(*) from accounts`).Scan(&tenants))
	require.Equal(t, 1, tenants)
}

// The token is opaque, 256 bits from crypto/rand behind a short prefix, and only its SHA-256
// is stored: the plaintext appears nowhere in the database.
func TestSessionTokenIsStoredOnlyAsHash(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")

	require.True(t, strings.HasPrefix(p.token, tenant.TokenPrefix))
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(p.token, tenant.TokenPrefix))
	require.NoError(t, err)
	require.Len(t, raw, 32)

	// No 12-character piece of the token's random part is stored anywhere (in any encoding
	// Postgres's JSON shows text in).
	random := strings.TrimPrefix(p.token, tenant.TokenPrefix)
	for table, rows := range s.Snapshot(t) {
		for _, row := range rows {
			for i := 0; i+12 <= len(random); i++ {
				require.NotContains(t, row, random[i:i+12], "token plaintext in %s", table)
			}
		}
	}
	var stored []byte
	require.NoError(t, s.PG.Migrator.QueryRow(ctxT(t), `select token_hash from sessions where owner_id = $1`, p.id).Scan(&stored))
	sum := sha256.Sum256([]byte(p.token))
	require.Equal(t, sum[:], stored)
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")
	ctx := ctxT(t)

	resp, err := s.sessions.Authenticate(ctx, tokenReq(p.token))
	require.NoError(t, err)
	require.Equal(t, p.id.String(), resp.GetOwnerId())
	require.Equal(t, "us-east", resp.GetHomeRegion())
	require.Equal(t, tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE, resp.GetStatus())
	require.Equal(t, p.sessionID, resp.GetSessionId())
	require.WithinDuration(t, s.Clock.Now().Add(s.TTL), resp.GetExpireTime().AsTime(), time.Microsecond)

	// Everything that is not a live token gets one answer.
	_, unknownErr := s.sessions.Authenticate(ctx, tokenReq(tenant.TokenPrefix+strings.Repeat("A", 43)))
	requireCode(t, unknownErr, codes.Unauthenticated)
	tampered := []byte(p.token)
	tampered[len(tampered)-2] ^= 1
	for name, tok := range map[string]string{
		"tampered":       string(tampered),
		"garbage":        "not-a-token",
		"other prefix":   "abc_" + strings.TrimPrefix(p.token, tenant.TokenPrefix),
		"padded":         p.token + "=",
		"truncated":      p.token[:len(p.token)-1],
		"bearer written": "Bearer " + p.token,
	} {
		_, err := s.sessions.Authenticate(ctx, tokenReq(tok))
		requireCode(t, err, codes.Unauthenticated)
		sameAnswer(t, unknownErr, err)
		_ = name
	}
}

// A verified identity authenticates the tenant it signed up and nothing else: no tenant, no
// session and no write for an identity that never signed in.
func TestAuthenticateByIdentity(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	ctx := ctxT(t)
	p := s.signUp(t, 0, "")

	before := s.Snapshot(t)
	resp, err := s.sessions.Authenticate(ctx, identityReq(testIssuer, p.subject, "changed@example.com"))
	require.NoError(t, err)
	require.Equal(t, p.id.String(), resp.GetOwnerId())
	require.Equal(t, "us-east", resp.GetHomeRegion())
	require.Equal(t, tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE, resp.GetStatus())
	require.Empty(t, resp.GetSessionId())
	require.Nil(t, resp.GetExpireTime())

	for name, req := range map[string]*tenantv1.AuthenticateRequest{
		"unknown subject":            identityReq(testIssuer, "nobody", "nobody@example.com"),
		"same subject, other issuer": identityReq("https://other-idp.test", p.subject, p.email),
	} {
		_, err := s.sessions.Authenticate(ctx, req)
		st := requireCode(t, err, codes.Unauthenticated)
		require.Equal(t, "no tenant for this identity; sign in first", st.Message(), name)
	}
	unverified := identityReq(testIssuer, p.subject, p.email)
	unverified.GetIdentity().EmailVerified = false
	_, err = s.sessions.Authenticate(ctx, unverified)
	requireCode(t, err, codes.InvalidArgument)
	_, err = s.sessions.Authenticate(ctx, &tenantv1.AuthenticateRequest{})
	requireCode(t, err, codes.InvalidArgument)
	require.Equal(t, before, s.Snapshot(t), "authenticating writes nothing")

	_, err = s.admin.DisableTenant(ctx, &tenantv1.DisableTenantRequest{OwnerId: p.id.String()})
	require.NoError(t, err)
	resp, err = s.sessions.Authenticate(ctx, identityReq(testIssuer, p.subject, p.email))
	require.NoError(t, err)
	require.Equal(t, tenantv1.AccountStatus_ACCOUNT_STATUS_DELETION_PENDING, resp.GetStatus())
}

func TestRevokedAndExpiredSessionsStopAtOnce(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	ctx := ctxT(t)
	p := s.signUp(t, 0, "")
	second, err := s.sessions.SignIn(ctx, signInReq(p.subject, p.email, 0, ""))
	require.NoError(t, err)
	third, err := s.sessions.SignIn(ctx, signInReq(p.subject, p.email, 0, ""))
	require.NoError(t, err)
	_, unknownErr := s.sessions.Authenticate(ctx, tokenReq(tenant.TokenPrefix+strings.Repeat("B", 43)))

	// Revoke one: that token stops, the others go on.
	_, err = s.sessions.RevokeSession(s.as(t, p), &tenantv1.RevokeSessionRequest{SessionId: second.GetSession().GetSessionId()})
	require.NoError(t, err)
	_, err = s.sessions.Authenticate(ctx, tokenReq(second.GetSessionToken()))
	sameAnswer(t, unknownErr, err)
	_, err = s.sessions.Authenticate(ctx, tokenReq(p.token))
	require.NoError(t, err)
	require.Contains(t, s.OutboxSubjects(t, p.id), "tenant.sessions.revoked")

	// Revoking it again is NotFound, like any unknown session.
	_, err = s.sessions.RevokeSession(s.as(t, p), &tenantv1.RevokeSessionRequest{SessionId: second.GetSession().GetSessionId()})
	_, unknownRevoke := s.sessions.RevokeSession(s.as(t, p), &tenantv1.RevokeSessionRequest{SessionId: uuid.NewString()})
	requireCode(t, unknownRevoke, codes.NotFound)
	sameAnswer(t, unknownRevoke, err)

	// Expiry: move the clock past the lifetime.
	s.Clock.Advance(s.TTL + 1)
	for _, tok := range []string{p.token, third.GetSessionToken()} {
		_, err = s.sessions.Authenticate(ctx, tokenReq(tok))
		sameAnswer(t, unknownErr, err)
	}
	list, err := s.sessions.ListSessions(s.as(t, p), &tenantv1.ListSessionsRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetSessions(), "expired sessions are not listed")
}

func TestRevokeAllSessions(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	ctx := ctxT(t)
	p := s.signUp(t, 0, "")
	more, err := s.sessions.SignIn(ctx, signInReq(p.subject, p.email, 0, ""))
	require.NoError(t, err)

	resp, err := s.sessions.RevokeAllSessions(s.as(t, p), &tenantv1.RevokeAllSessionsRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 2, resp.GetRevoked())
	for _, tok := range []string{p.token, more.GetSessionToken()} {
		_, err := s.sessions.Authenticate(ctx, tokenReq(tok))
		requireCode(t, err, codes.Unauthenticated)
	}
	require.Equal(t, []string{"tenant.account.created", "tenant.sessions.revoked"}, s.OutboxSubjects(t, p.id))
	resp, err = s.sessions.RevokeAllSessions(s.as(t, p), &tenantv1.RevokeAllSessionsRequest{})
	require.NoError(t, err)
	require.Zero(t, resp.GetRevoked())
	require.Equal(t, []string{"tenant.account.created", "tenant.sessions.revoked"}, s.OutboxSubjects(t, p.id), "nothing revoked, nothing announced")
}

func TestListSessionsMarksCurrent(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")
	other, err := s.sessions.SignIn(ctxT(t), signInReq(p.subject, p.email, 0, ""))
	require.NoError(t, err)

	list, err := s.sessions.ListSessions(s.as(t, p), &tenantv1.ListSessionsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetSessions(), 2)
	current := map[string]bool{}
	for _, sess := range list.GetSessions() {
		current[sess.GetSessionId()] = sess.GetCurrent()
		require.Equal(t, "test-agent/1.0", sess.GetUserAgent())
	}
	require.Equal(t, map[string]bool{p.sessionID: true, other.GetSession().GetSessionId(): false}, current)

	// Without an asserted session nothing is current.
	list, err = s.sessions.ListSessions(s.AsOwner(ctxT(t), p.id, ""), &tenantv1.ListSessionsRequest{})
	require.NoError(t, err)
	for _, sess := range list.GetSessions() {
		require.False(t, sess.GetCurrent())
	}
}

// A tenant pending deletion has every session revoked at once; signing in again still gives
// a session, which Authenticate marks DELETION_PENDING so that the edge allows only the
// deletion routes; the service itself refuses changes for it.
func TestDeletionPendingTenant(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	ctx := ctxT(t)
	p := s.signUp(t, 0, "")
	s.grant(t, p, 10)

	dis, err := s.admin.DisableTenant(ctx, &tenantv1.DisableTenantRequest{OwnerId: p.id.String()})
	require.NoError(t, err)
	require.EqualValues(t, 1, dis.GetSessionsRevoked())
	_, err = s.sessions.Authenticate(ctx, tokenReq(p.token))
	requireCode(t, err, codes.Unauthenticated)
	require.Equal(t, []string{"tenant.account.created", "tenant.account.status_changed", "tenant.sessions.revoked"},
		s.OutboxSubjects(t, p.id))

	back, err := s.sessions.SignIn(ctx, signInReq(p.subject, p.email, 0, ""))
	require.NoError(t, err)
	require.Equal(t, tenantv1.AccountStatus_ACCOUNT_STATUS_DELETION_PENDING, back.GetAccount().GetStatus())
	auth, err := s.sessions.Authenticate(ctx, tokenReq(back.GetSessionToken()))
	require.NoError(t, err)
	require.Equal(t, tenantv1.AccountStatus_ACCOUNT_STATUS_DELETION_PENDING, auth.GetStatus())

	pending := person{id: p.id, sessionID: back.GetSession().GetSessionId()}
	before := s.Snapshot(t, p.id)
	name := "New name"
	_, err = s.accounts.UpdateAccount(s.as(t, pending), &tenantv1.UpdateAccountRequest{DisplayName: &name})
	requireCode(t, err, codes.FailedPrecondition)
	_, err = s.builder.DebitCredits(s.as(t, pending), &tenantv1.DebitCreditsRequest{Amount: 1, Reason: "build", IdempotencyKey: "k"})
	requireCode(t, err, codes.FailedPrecondition)
	_, err = s.apps.ResolveEmail(ctx, &tenantv1.ResolveEmailRequest{Email: p.email})
	requireCode(t, err, codes.NotFound)
	require.Equal(t, before, s.Snapshot(t, p.id), "refused requests change nothing")

	// Disabling again revokes the session opened to cancel, and announces no new status.
	dis, err = s.admin.DisableTenant(ctx, &tenantv1.DisableTenantRequest{OwnerId: p.id.String()})
	require.NoError(t, err)
	require.EqualValues(t, 1, dis.GetSessionsRevoked())

	// Cancelling restores the account.
	_, err = s.admin.RestoreTenant(ctx, &tenantv1.RestoreTenantRequest{OwnerId: p.id.String()})
	require.NoError(t, err)
	_, err = s.admin.RestoreTenant(ctx, &tenantv1.RestoreTenantRequest{OwnerId: p.id.String()})
	require.NoError(t, err, "restoring twice is harmless")
	got, err := s.accounts.GetAccount(s.as(t, p), &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Equal(t, tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE, got.GetAccount().GetStatus())
	_, err = s.builder.DebitCredits(s.as(t, p), &tenantv1.DebitCreditsRequest{Amount: 1, Reason: "build", IdempotencyKey: "k"})
	require.NoError(t, err)
	var statuses int
	require.NoError(t, s.PG.Migrator.QueryRow(ctx,
		`select count(*) from outbox where owner_id = $1 and subject = 'tenant.account.status_changed'`, p.id).Scan(&statuses))
	require.Equal(t, 2, statuses, "pending, then active: one announcement each")
}

func TestSignUpRegionAndPlanRules(t *testing.T) {
	t.Parallel()
	us := newSuite(t, tenanttest.Options{Region: owner.USEast})
	eu := newSuite(t, tenanttest.Options{Region: owner.EUWest})

	tests := []struct {
		name       string
		s          *suite
		plan       tenantv1.Plan
		region     string
		code       codes.Code
		wrongTo    string // the home_region of a WRONG_REGION refusal
		wantRegion string
	}{
		{name: "default region", s: us, region: "", wantRegion: "us-east"},
		{name: "studio in us-east", s: us, plan: tenantv1.Plan_PLAN_STUDIO, region: "us-east", wantRegion: "us-east"},
		{name: "studio in eu-west on an eu-west instance", s: eu, plan: tenantv1.Plan_PLAN_STUDIO, region: "eu-west", wantRegion: "eu-west"},
		{name: "eu-west on free", s: us, plan: tenantv1.Plan_PLAN_FREE, region: "eu-west", code: codes.FailedPrecondition},
		{name: "eu-west on pro", s: eu, plan: tenantv1.Plan_PLAN_PRO, region: "eu-west", code: codes.FailedPrecondition},
		{name: "eu-west without a plan", s: eu, region: "eu-west", code: codes.FailedPrecondition},
		{name: "studio eu-west on a us-east instance", s: us, plan: tenantv1.Plan_PLAN_STUDIO, region: "eu-west",
			code: codes.FailedPrecondition, wrongTo: "eu-west"},
		{name: "default region on an eu-west instance", s: eu, region: "", code: codes.FailedPrecondition, wrongTo: "us-east"},
		{name: "unknown region", s: us, plan: tenantv1.Plan_PLAN_STUDIO, region: "eu-central", code: codes.InvalidArgument},
		{name: "region in capitals", s: us, region: "US-EAST", code: codes.InvalidArgument},
		{name: "unknown plan", s: us, plan: tenantv1.Plan(42), code: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.s.Snapshot(t)
			sub := "sub-" + randomHex(t)
			resp, err := tt.s.sessions.SignIn(ctxT(t), signInReq(sub, sub+"@example.com", tt.plan, tt.region))
			if tt.code == codes.OK {
				require.NoError(t, err)
				require.Equal(t, tt.wantRegion, resp.GetAccount().GetHomeRegion())
				id, err := owner.Parse(resp.GetAccount().GetOwnerId())
				require.NoError(t, err)
				home, err := tt.s.edge.LookupHomeRegion(ctxT(t), &tenantv1.LookupHomeRegionRequest{OwnerId: id.String()})
				require.NoError(t, err)
				require.Equal(t, tt.wantRegion, home.GetHomeRegion())
				return
			}
			st := requireCode(t, err, tt.code)
			info := errorInfo(st)
			if tt.wrongTo != "" {
				require.NotNil(t, info)
				require.Equal(t, interceptors.ReasonWrongRegion, info.GetReason())
				require.Equal(t, tt.wrongTo, info.GetMetadata()["home_region"])
				require.Contains(t, st.Message(), tt.wrongTo)
			} else if info != nil {
				require.NotEqual(t, interceptors.ReasonWrongRegion, info.GetReason())
			}
			require.Equal(t, before, tt.s.Snapshot(t), "a refused sign-up writes nothing")
		})
	}
}

func TestReasonWrongRegionMatchesInterceptors(t *testing.T) {
	t.Parallel()
	require.Equal(t, interceptors.ReasonWrongRegion, tenant.ReasonWrongRegion)
}
