package grpcapi_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/tenant/internal/grpcapi"
	"github.com/forgeapps/backbone/services/tenant/internal/tenanttest"
)

// A second tenant calling every owner RPC with the first tenant's IDs (session IDs,
// idempotency keys, page tokens) gets what an ID that does not exist gets, and changes
// nothing of the first tenant (rows read by the migration role, outside RLS).
func TestCrossTenantMatrix(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	a := s.signUp(t, tenantv1.Plan_PLAN_PRO, "")
	b := s.signUp(t, 0, "")
	for range 4 {
		s.grant(t, a, 10)
	}
	s.grant(t, b, 10)
	aDebit, err := s.builder.DebitCredits(s.as(t, a), &tenantv1.DebitCreditsRequest{Amount: 3, Reason: "build", IdempotencyKey: "a-key"})
	require.NoError(t, err)
	aPage, err := s.credits.ListCreditEntries(s.as(t, a), &tenantv1.ListCreditEntriesRequest{PageSize: 2})
	require.NoError(t, err)
	require.NotEmpty(t, aPage.GetNextPageToken())
	aEntries := map[string]bool{}
	aAll, err := s.credits.ListCreditEntries(s.as(t, a), &tenantv1.ListCreditEntriesRequest{PageSize: 100})
	require.NoError(t, err)
	for _, e := range aAll.GetEntries() {
		aEntries[e.GetEntryId()] = true
	}
	aRows := s.Snapshot(t, a.id)
	// B's requests run with A's session ID asserted as B's current session where that matters.
	bWithASession := person{id: b.id, sessionID: a.sessionID}
	bWithUnknownSession := person{id: b.id, sessionID: uuid.NewString()}

	t.Run("RevokeSession", func(t *testing.T) {
		_, foreign := s.sessions.RevokeSession(s.as(t, b), &tenantv1.RevokeSessionRequest{SessionId: a.sessionID})
		_, missing := s.sessions.RevokeSession(s.as(t, b), &tenantv1.RevokeSessionRequest{SessionId: uuid.NewString()})
		requireCode(t, foreign, codes.NotFound)
		sameAnswer(t, missing, foreign)
		_, err := s.sessions.Authenticate(ctxT(t), tokenReq(a.token))
		require.NoError(t, err, "A's session still works")
	})
	t.Run("ListSessions", func(t *testing.T) {
		foreign, err := s.sessions.ListSessions(s.as(t, bWithASession), &tenantv1.ListSessionsRequest{})
		require.NoError(t, err)
		missing, err := s.sessions.ListSessions(s.as(t, bWithUnknownSession), &tenantv1.ListSessionsRequest{})
		require.NoError(t, err)
		require.Len(t, foreign.GetSessions(), 1)
		require.Equal(t, b.sessionID, foreign.GetSessions()[0].GetSessionId())
		require.False(t, foreign.GetSessions()[0].GetCurrent(), "A's session ID marks nothing current")
		require.Equal(t, len(missing.GetSessions()), len(foreign.GetSessions()))
	})
	t.Run("ListCreditEntries page token", func(t *testing.T) {
		_, foreign := s.credits.ListCreditEntries(s.as(t, b), &tenantv1.ListCreditEntriesRequest{PageToken: aPage.GetNextPageToken()})
		forged := base64.RawURLEncoding.EncodeToString(append([]byte{1}, make([]byte, 16)...))
		_, missing := s.credits.ListCreditEntries(s.as(t, b), &tenantv1.ListCreditEntriesRequest{PageToken: forged})
		requireCode(t, foreign, codes.InvalidArgument)
		sameAnswer(t, missing, foreign)
	})
	t.Run("ListCreditEntries and GetCreditBalance", func(t *testing.T) {
		list, err := s.credits.ListCreditEntries(s.as(t, b), &tenantv1.ListCreditEntriesRequest{PageSize: 100})
		require.NoError(t, err)
		require.Len(t, list.GetEntries(), 1)
		bal, err := s.credits.GetCreditBalance(s.as(t, b), &tenantv1.GetCreditBalanceRequest{})
		require.NoError(t, err)
		require.EqualValues(t, 10, bal.GetBalance())
		for _, e := range append(list.GetEntries(), bal.GetRecentEntries()...) {
			require.False(t, aEntries[e.GetEntryId()], "B sees one of A's entries")
		}
	})
	t.Run("DebitCredits with A's idempotency key", func(t *testing.T) {
		foreign, err := s.builder.DebitCredits(s.as(t, b), &tenantv1.DebitCreditsRequest{Amount: 2, Reason: "build", IdempotencyKey: "a-key"})
		require.NoError(t, err)
		fresh, err := s.builder.DebitCredits(s.as(t, b), &tenantv1.DebitCreditsRequest{Amount: 2, Reason: "build", IdempotencyKey: "fresh-key"})
		require.NoError(t, err)
		require.NotEqual(t, aDebit.GetEntry().GetEntryId(), foreign.GetEntry().GetEntryId(), "A's entry is not replayed to B")
		require.EqualValues(t, -2, foreign.GetEntry().GetAmount(), "applied as B's own new key")
		require.EqualValues(t, foreign.GetBalance()-2, fresh.GetBalance())
		// A's key with A's amount would have been a replay for A: for B it is just a debit.
		_, err = s.builder.DebitCredits(s.as(t, b), &tenantv1.DebitCreditsRequest{Amount: 3, Reason: "build", IdempotencyKey: "a-key"})
		requireCode(t, err, codes.FailedPrecondition) // B's own "a-key" now has amount 2
	})
	t.Run("GetAccount and UpdateAccount", func(t *testing.T) {
		got, err := s.accounts.GetAccount(s.as(t, bWithASession), &tenantv1.GetAccountRequest{})
		require.NoError(t, err)
		require.Equal(t, b.id.String(), got.GetAccount().GetOwnerId())
		name := "B's name"
		upd, err := s.accounts.UpdateAccount(s.as(t, bWithASession), &tenantv1.UpdateAccountRequest{DisplayName: &name})
		require.NoError(t, err)
		require.Equal(t, b.id.String(), upd.GetAccount().GetOwnerId())
	})
	t.Run("RevokeAllSessions", func(t *testing.T) {
		resp, err := s.sessions.RevokeAllSessions(s.as(t, bWithASession), &tenantv1.RevokeAllSessionsRequest{})
		require.NoError(t, err)
		require.EqualValues(t, 1, resp.GetRevoked(), "B's one session")
		_, err = s.sessions.Authenticate(ctxT(t), tokenReq(a.token))
		require.NoError(t, err, "A's session still works")
	})

	require.Equal(t, aRows, s.Snapshot(t, a.id), "nothing of A changed")
}

// Bad input on every RPC that takes any gets InvalidArgument and changes nothing. (GetAccount,
// ListSessions, RevokeAllSessions and GetCreditBalance take no input.)
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")
	s.grant(t, p, 10)
	long := func(n int) string { return strings.Repeat("x", n) }
	ident := func(mut func(*tenantv1.VerifiedIdentity)) *tenantv1.SignInRequest {
		req := signInReq("sub-bad", "bad@example.com", 0, "")
		mut(req.Identity)
		return req
	}
	str := func(v string) *string { return &v }
	id := p.id.String()

	type call func(ctx context.Context) error
	signIn := func(req *tenantv1.SignInRequest) call {
		return func(ctx context.Context) error { _, err := s.sessions.SignIn(ctx, req); return err }
	}
	auth := func(req *tenantv1.AuthenticateRequest) call {
		return func(ctx context.Context) error { _, err := s.sessions.Authenticate(ctx, req); return err }
	}
	update := func(req *tenantv1.UpdateAccountRequest) call {
		return func(ctx context.Context) error { _, err := s.accounts.UpdateAccount(s.as(t, p), req); return err }
	}
	revoke := func(sid string) call {
		return func(ctx context.Context) error {
			_, err := s.sessions.RevokeSession(s.as(t, p), &tenantv1.RevokeSessionRequest{SessionId: sid})
			return err
		}
	}
	list := func(req *tenantv1.ListCreditEntriesRequest) call {
		return func(ctx context.Context) error { _, err := s.credits.ListCreditEntries(s.as(t, p), req); return err }
	}
	grant := func(req *tenantv1.GrantCreditsRequest) call {
		return func(ctx context.Context) error { _, err := s.billing.GrantCredits(ctx, req); return err }
	}
	debit := func(req *tenantv1.DebitCreditsRequest) call {
		return func(ctx context.Context) error { _, err := s.builder.DebitCredits(s.as(t, p), req); return err }
	}
	plan := func(req *tenantv1.ChangePlanRequest) call {
		return func(ctx context.Context) error { _, err := s.plans.ChangePlan(ctx, req); return err }
	}
	goodGrant := func(mut func(*tenantv1.GrantCreditsRequest)) *tenantv1.GrantCreditsRequest {
		r := &tenantv1.GrantCreditsRequest{OwnerId: id, Amount: 5, Reason: "r", IdempotencyKey: "k-bad"}
		mut(r)
		return r
	}
	goodDebit := func(mut func(*tenantv1.DebitCreditsRequest)) *tenantv1.DebitCreditsRequest {
		r := &tenantv1.DebitCreditsRequest{Amount: 1, Reason: "r", IdempotencyKey: "k-bad"}
		mut(r)
		return r
	}
	badOwners := []string{"", "not-a-uuid", "00000000-0000-0000-0000-000000000000", id + "0", strings.ToUpper(id)[:35]}

	cases := map[string]call{
		"SignIn: no identity":      signIn(&tenantv1.SignInRequest{}),
		"SignIn: empty issuer":     signIn(ident(func(i *tenantv1.VerifiedIdentity) { i.Issuer = "" })),
		"SignIn: oversize issuer":  signIn(ident(func(i *tenantv1.VerifiedIdentity) { i.Issuer = long(513) })),
		"SignIn: empty subject":    signIn(ident(func(i *tenantv1.VerifiedIdentity) { i.Subject = "" })),
		"SignIn: oversize subject": signIn(ident(func(i *tenantv1.VerifiedIdentity) { i.Subject = long(256) })),
		"SignIn: malformed email":  signIn(ident(func(i *tenantv1.VerifiedIdentity) { i.Email = "not-an-email" })),
		"SignIn: oversize email":   signIn(ident(func(i *tenantv1.VerifiedIdentity) { i.Email = long(250) + "@example.com" })),
		"SignIn: unverified email": signIn(ident(func(i *tenantv1.VerifiedIdentity) { i.EmailVerified = false })),
		"SignIn: unknown plan":     signIn(signInReq("sub-bad", "bad@example.com", tenantv1.Plan(9), "")),
		"SignIn: unknown region":   signIn(signInReq("sub-bad", "bad@example.com", 0, "mars")),
		"SignIn: oversize user agent": signIn(func() *tenantv1.SignInRequest {
			r := signInReq("sub-bad", "bad@example.com", 0, "")
			r.UserAgent = long(513)
			return r
		}()),
		"Authenticate: no credential":       auth(&tenantv1.AuthenticateRequest{}),
		"Authenticate: empty token":         auth(tokenReq("")),
		"Authenticate: oversize token":      auth(tokenReq(long(129))),
		"Authenticate: bad identity":        auth(identityReq("", "s", "x@example.com")),
		"UpdateAccount: nothing":            update(&tenantv1.UpdateAccountRequest{}),
		"UpdateAccount: empty name":         update(&tenantv1.UpdateAccountRequest{DisplayName: str("")}),
		"UpdateAccount: blank name":         update(&tenantv1.UpdateAccountRequest{DisplayName: str("   ")}),
		"UpdateAccount: oversize name":      update(&tenantv1.UpdateAccountRequest{DisplayName: str(long(101))}),
		"UpdateAccount: control chars":      update(&tenantv1.UpdateAccountRequest{DisplayName: str("a\x00b")}),
		"UpdateAccount: bad email":          update(&tenantv1.UpdateAccountRequest{NotificationEmail: str("nope")}),
		"UpdateAccount: oversize email":     update(&tenantv1.UpdateAccountRequest{NotificationEmail: str(long(250) + "@example.com")}),
		"RevokeSession: empty":              revoke(""),
		"RevokeSession: not a uuid":         revoke("session-1"),
		"ListCreditEntries: negative size":  list(&tenantv1.ListCreditEntriesRequest{PageSize: -1}),
		"ListCreditEntries: oversize size":  list(&tenantv1.ListCreditEntriesRequest{PageSize: 101}),
		"ListCreditEntries: oversize token": list(&tenantv1.ListCreditEntriesRequest{PageToken: long(257)}),
		"ListCreditEntries: garbage token":  list(&tenantv1.ListCreditEntriesRequest{PageToken: "!!!"}),
		"GrantCredits: zero":                grant(goodGrant(func(r *tenantv1.GrantCreditsRequest) { r.Amount = 0 })),
		"GrantCredits: negative":            grant(goodGrant(func(r *tenantv1.GrantCreditsRequest) { r.Amount = -5 })),
		"GrantCredits: too much":            grant(goodGrant(func(r *tenantv1.GrantCreditsRequest) { r.Amount = 100_000_001 })),
		"GrantCredits: no reason":           grant(goodGrant(func(r *tenantv1.GrantCreditsRequest) { r.Reason = "" })),
		"GrantCredits: oversize reason":     grant(goodGrant(func(r *tenantv1.GrantCreditsRequest) { r.Reason = long(201) })),
		"GrantCredits: no key":              grant(goodGrant(func(r *tenantv1.GrantCreditsRequest) { r.IdempotencyKey = "" })),
		"GrantCredits: oversize key":        grant(goodGrant(func(r *tenantv1.GrantCreditsRequest) { r.IdempotencyKey = long(129) })),
		"DebitCredits: zero":                debit(goodDebit(func(r *tenantv1.DebitCreditsRequest) { r.Amount = 0 })),
		"DebitCredits: negative":            debit(goodDebit(func(r *tenantv1.DebitCreditsRequest) { r.Amount = -5 })),
		"DebitCredits: too much":            debit(goodDebit(func(r *tenantv1.DebitCreditsRequest) { r.Amount = 100_000_001 })),
		"DebitCredits: no reason":           debit(goodDebit(func(r *tenantv1.DebitCreditsRequest) { r.Reason = "" })),
		"DebitCredits: oversize key":        debit(goodDebit(func(r *tenantv1.DebitCreditsRequest) { r.IdempotencyKey = long(129) })),
		"ChangePlan: no plan":               plan(&tenantv1.ChangePlanRequest{OwnerId: id}),
		"ChangePlan: unknown plan":          plan(&tenantv1.ChangePlanRequest{OwnerId: id, Plan: tenantv1.Plan(7)}),
		"ResolveEmail: empty": func(ctx context.Context) error {
			_, err := s.apps.ResolveEmail(ctx, &tenantv1.ResolveEmailRequest{})
			return err
		},
		"ResolveEmail: malformed": func(ctx context.Context) error {
			_, err := s.apps.ResolveEmail(ctx, &tenantv1.ResolveEmailRequest{Email: "a@@b"})
			return err
		},
		"PurgeTenant: negative batch": func(ctx context.Context) error {
			_, err := s.admin.PurgeTenant(ctx, &tenantv1.PurgeTenantRequest{OwnerId: id, BatchSize: -1})
			return err
		},
		"PurgeTenant: oversize batch": func(ctx context.Context) error {
			_, err := s.admin.PurgeTenant(ctx, &tenantv1.PurgeTenantRequest{OwnerId: id, BatchSize: 10001})
			return err
		},
	}
	for i, bad := range badOwners {
		for name, c := range map[string]call{
			"GrantCredits": grant(goodGrant(func(r *tenantv1.GrantCreditsRequest) { r.OwnerId = bad })),
			"ChangePlan":   plan(&tenantv1.ChangePlanRequest{OwnerId: bad, Plan: tenantv1.Plan_PLAN_PRO}),
			"LookupHomeRegion": func(ctx context.Context) error {
				_, err := s.edge.LookupHomeRegion(ctx, &tenantv1.LookupHomeRegionRequest{OwnerId: bad})
				return err
			},
			"DisableTenant": func(ctx context.Context) error {
				_, err := s.admin.DisableTenant(ctx, &tenantv1.DisableTenantRequest{OwnerId: bad})
				return err
			},
			"RestoreTenant": func(ctx context.Context) error {
				_, err := s.admin.RestoreTenant(ctx, &tenantv1.RestoreTenantRequest{OwnerId: bad})
				return err
			},
			"PurgeTenant": func(ctx context.Context) error {
				_, err := s.admin.PurgeTenant(ctx, &tenantv1.PurgeTenantRequest{OwnerId: bad})
				return err
			},
			"ExportTenant": func(ctx context.Context) error {
				stream, err := s.admin.ExportTenant(ctx, &tenantv1.ExportTenantRequest{OwnerId: bad})
				if err != nil {
					return err
				}
				_, err = stream.Recv()
				return err
			},
		} {
			cases[name+": bad owner_id #"+string(rune('0'+i))] = c
		}
	}

	before := s.Snapshot(t)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			requireCode(t, c(ctxT(t)), codes.InvalidArgument)
		})
	}
	require.Equal(t, before, s.Snapshot(t), "bad input changed something")
}

// Every method is in the workload table, and refuses every workload the table does not list
// for it before any handler runs; system methods refuse an asserted owner, owner methods a
// missing one.
func TestWorkloadTable(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	table := grpcapi.Table()
	var registered []string
	for _, svc := range []grpc.ServiceDesc{tenantv1.AccountService_ServiceDesc, tenantv1.SessionService_ServiceDesc,
		tenantv1.CreditService_ServiceDesc, tenantv1.TenantAdminService_ServiceDesc} {
		for _, m := range svc.Methods {
			registered = append(registered, "/"+svc.ServiceName+"/"+m.MethodName)
		}
		for _, m := range svc.Streams {
			registered = append(registered, "/"+svc.ServiceName+"/"+m.StreamName)
		}
	}
	require.Len(t, table, len(registered))
	// Who may call what, written out a second time so that widening the table is a visible,
	// reviewed change of this test too.
	want := map[string]string{
		"AccountService/GetAccount":           "owner: gateway apps",
		"AccountService/UpdateAccount":        "owner: gateway",
		"SessionService/SignIn":               "system: gateway",
		"SessionService/Authenticate":         "system: gateway",
		"SessionService/ListSessions":         "owner: gateway",
		"SessionService/RevokeSession":        "owner: gateway",
		"SessionService/RevokeAllSessions":    "owner: gateway",
		"CreditService/GetCreditBalance":      "owner: gateway builder",
		"CreditService/ListCreditEntries":     "owner: gateway",
		"CreditService/GrantCredits":          "system: billing",
		"CreditService/DebitCredits":          "owner: builder",
		"TenantAdminService/ChangePlan":       "system: billing",
		"TenantAdminService/LookupHomeRegion": "system: gateway apps data-lifecycle",
		"TenantAdminService/ResolveEmail":     "system: apps",
		"TenantAdminService/DisableTenant":    "system: data-lifecycle",
		"TenantAdminService/RestoreTenant":    "system: data-lifecycle",
		"TenantAdminService/ExportTenant":     "system: data-lifecycle",
		"TenantAdminService/PurgeTenant":      "system: data-lifecycle",
	}
	got := map[string]string{}
	for m, r := range table {
		require.False(t, r.AnyPeer, m)
		got[strings.TrimPrefix(m, "/forge.tenant.v1.")] = r.Mode.String() + ": " + strings.Join(r.Callers, " ")
	}
	require.Equal(t, want, got)
	callers := append(workload.Services(), workload.Billing, workload.Builder)

	invoke := func(ctx context.Context, cc *grpc.ClientConn, method string) error {
		if method == tenantv1.TenantAdminService_ExportTenant_FullMethodName {
			st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
			if err != nil {
				return err
			}
			if err := st.SendMsg(&emptypb.Empty{}); err != nil {
				return err
			}
			if err := st.CloseSend(); err != nil {
				return err
			}
			return st.RecvMsg(&emptypb.Empty{})
		}
		return cc.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
	}
	for _, method := range registered {
		rule, ok := table[method]
		require.True(t, ok, "%s is not in the workload table", method)
		for _, caller := range callers {
			listed := false
			for _, c := range rule.Callers {
				listed = listed || c == caller
			}
			if listed || caller == workload.Tenant {
				continue
			}
			ctx := s.AsOwner(ctxT(t), owner.New(), "")
			err := invoke(ctx, s.Conn(caller), method)
			require.Equal(t, codes.PermissionDenied, status.Code(err), "%s called by %s: %v", method, caller, err)
		}
		if len(rule.Callers) == 0 {
			continue
		}
		cc := s.Conn(rule.Callers[0])
		if rule.Mode.String() == "system" {
			err := invoke(s.AsOwner(ctxT(t), owner.New(), ""), cc, method)
			require.Equal(t, codes.PermissionDenied, status.Code(err), "%s with an asserted owner", method)
		} else {
			err := invoke(ctxT(t), cc, method)
			require.Equal(t, codes.Unauthenticated, status.Code(err), "%s without an owner", method)
		}
	}
}
