package integration_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/gateway/internal/testidp"
)

// TestEdge runs the acceptance list through the real gateway and the real tenant
// service, sharing one stack (starting one costs seconds).
func TestEdge(t *testing.T) {
	s := start(t,
		// A long cache TTL: a revoked session that stops working at once proves the
		// synchronous drop and the event, not the TTL.
		"FORGE_AUTH_CACHE_TTL=1m",
		"FORGE_RATE_TENANT_RPS=20", "FORGE_RATE_TENANT_BURST=60",
	)
	t.Run("tokens", func(t *testing.T) { testTokens(t, s) })
	t.Run("revoked session stops at once", func(t *testing.T) { testRevocation(t, s) })
	t.Run("spoofed owner", func(t *testing.T) { testSpoofedOwner(t, s) })
	t.Run("second tenant", func(t *testing.T) { testSecondTenant(t, s) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, s) })
	t.Run("cors and cookie origin", func(t *testing.T) { testBrowserRules(t, s) })
	t.Run("limits", func(t *testing.T) { testLimits(t, s) })
	t.Run("logs hold no credentials", func(t *testing.T) { testLogs(t, s) })
}

func testTokens(t *testing.T, s *stack) {
	alice := s.signIn("tokens-alice@example.com")
	other := testidp.Start(t, audience)
	valid := s.idp.Token(t, testidp.Claims{Email: alice.email})
	revoked := s.signIn(alice.email)
	resp := s.do(req{method: http.MethodDelete, path: "/v1/sessions/" + revoked.sessionID, bearer: alice.token})
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)

	// The session token with its last two characters changed (to ones they are not).
	tamperedSession := alice.token[:len(alice.token)-2] + "AA"
	if tamperedSession == alice.token {
		tamperedSession = alice.token[:len(alice.token)-2] + "BB"
	}
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{name: "valid session", token: alice.token, want: http.StatusOK},
		{name: "valid ID token", token: valid, want: http.StatusOK},
		{name: "expired ID token", token: s.idp.Token(t, testidp.Claims{Email: alice.email, IssuedAt: time.Now().Add(-2 * time.Hour), Expiry: time.Now().Add(-time.Hour)}), want: http.StatusUnauthorized},
		{name: "revoked session", token: revoked.token, want: http.StatusUnauthorized},
		{name: "tampered ID token", token: testidp.Tamper(t, valid, "mallory@example.com"), want: http.StatusUnauthorized},
		{name: "tampered session token", token: tamperedSession, want: http.StatusUnauthorized},
		{name: "wrong issuer", token: other.Token(t, testidp.Claims{Email: alice.email}), want: http.StatusUnauthorized},
		{name: "another issuer's claim on the issuer's key", token: s.idp.Token(t, testidp.Claims{Email: alice.email, Issuer: other.Issuer}), want: http.StatusUnauthorized},
		{name: "issuer claim forged on another key", token: other.Token(t, testidp.Claims{Email: alice.email, Issuer: s.idp.Issuer}), want: http.StatusUnauthorized},
		{name: "wrong audience", token: s.idp.Token(t, testidp.Claims{Email: alice.email, Audience: []string{"another-client"}}), want: http.StatusUnauthorized},
		{name: "unsigned alg none", token: s.idp.UnsignedToken(t, testidp.Claims{Email: alice.email}), want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.do(req{method: http.MethodGet, path: "/v1/account", bearer: tt.token})
			require.Equal(t, tt.want, resp.status, "%s", resp.body)
			if tt.want == http.StatusOK {
				require.Equal(t, alice.owner.String(), resp.json(t)["account"].(map[string]any)["ownerId"])
				return
			}
			code, _ := resp.rpcStatus(t)
			require.Equal(t, codes.Unauthenticated, code)
		})
	}
	t.Run("sign-in refuses the same tokens", func(t *testing.T) {
		for _, tt := range tests[2:] {
			tok := tt.token
			if tt.name == "revoked session" || tt.name == "tampered session token" {
				continue
			}
			resp := s.do(req{method: http.MethodPost, path: "/v1/auth/signin", body: `{"id_token":"` + tok + `"}`})
			require.Equal(t, http.StatusUnauthorized, resp.status, "%s", resp.body)
			require.Empty(t, resp.header.Get("Set-Cookie"))
		}
	})
}

func testRevocation(t *testing.T, s *stack) {
	tests := []struct {
		name   string
		revoke func(t *testing.T, victim, other tenant)
	}{
		{name: "sign-out", revoke: func(t *testing.T, victim, _ tenant) {
			resp := s.do(req{method: http.MethodPost, path: "/v1/auth/signout", bearer: victim.token})
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
			require.Contains(t, resp.header.Get("Set-Cookie"), "Max-Age=0")
		}},
		{name: "DELETE /v1/sessions/{id}", revoke: func(t *testing.T, victim, other tenant) {
			resp := s.do(req{method: http.MethodDelete, path: "/v1/sessions/" + victim.sessionID, bearer: other.token})
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		}},
		{name: "revokeAll", revoke: func(t *testing.T, _, other tenant) {
			resp := s.do(req{method: http.MethodPost, path: "/v1/sessions:revokeAll", bearer: other.token, body: `{}`})
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		}},
		{name: "revoked elsewhere (another replica): the event reaches this one", revoke: func(t *testing.T, victim, _ tenant) {
			// As another gateway replica would: straight to the tenant service.
			cc := s.st.Dial(t, workload.Tenant, workload.Gateway)
			ctx := grpctest.AsOwner(background(), victim.owner)
			_, err := tenantv1.NewSessionServiceClient(cc).RevokeAllSessions(ctx, &tenantv1.RevokeAllSessionsRequest{})
			require.NoError(t, err)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			email := fmt.Sprintf("revoke-%d@example.com", i)
			victim, other := s.signIn(email), s.signIn(email)
			s.account(victim.token) // cached now, for a minute
			tt.revoke(t, victim, other)
			if i < 3 {
				resp := s.do(req{method: http.MethodGet, path: "/v1/account", bearer: victim.token})
				require.Equal(t, http.StatusUnauthorized, resp.status, "the edge that handled the revocation never honours the session again: %s", resp.body)
				return
			}
			// Another replica learns it from tenant.sessions.revoked: within the event's
			// latency, far below the one-minute cache TTL.
			revoked := time.Now()
			require.Eventually(t, func() bool {
				resp := s.do(req{method: http.MethodGet, path: "/v1/account", bearer: victim.token})
				require.Contains(t, []int{http.StatusOK, http.StatusUnauthorized}, resp.status, "%s", resp.body)
				return resp.status == http.StatusUnauthorized
			}, 5*time.Second, 100*time.Millisecond, "the revocation event did not reach the edge's cache")
			t.Logf("revocation seen by the edge through the event within %v", time.Since(revoked).Round(time.Millisecond))
		})
	}
}

func testSpoofedOwner(t *testing.T, s *stack) {
	alice := s.signIn("spoof-alice@example.com")
	bob := s.signIn("spoof-bob@example.com")
	headers := map[string]string{}
	for _, k := range []string{"X-Forge-Owner-Id", "Grpc-Metadata-X-Forge-Owner-Id", "X-Owner-Id", "Grpc-Metadata-Owner-Id"} {
		headers[k] = bob.owner.String()
	}
	for _, k := range []string{"X-Forge-Session-Id", "Grpc-Metadata-X-Forge-Session-Id"} {
		headers[k] = bob.sessionID
	}
	headers["X-Forge-Owner-Region"] = "eu-west"
	headers["Grpc-Metadata-X-Forge-Owner-Region"] = "eu-west"

	t.Run("headers: the request acts as the authenticated tenant", func(t *testing.T) {
		for _, path := range []string{"/v1/account", "/v1/credits", "/v1/sessions"} {
			resp := s.do(req{method: http.MethodGet, path: path, bearer: alice.token, header: headers})
			require.Equal(t, http.StatusOK, resp.status, "%s: %s", path, resp.body)
			require.NotContains(t, string(resp.body), bob.owner.String())
			require.NotContains(t, string(resp.body), bob.sessionID)
		}
		require.Equal(t, alice.owner.String(), s.account(alice.token)["ownerId"])
		resp := s.do(req{method: http.MethodDelete, path: "/v1/sessions/" + bob.sessionID, bearer: alice.token, header: headers})
		require.Equal(t, http.StatusNotFound, resp.status, "alice cannot end bob's session by claiming to be bob")
		s.account(bob.token)
	})
	t.Run("headers: refused without a credential", func(t *testing.T) {
		resp := s.do(req{method: http.MethodGet, path: "/v1/account", header: headers})
		require.Equal(t, http.StatusUnauthorized, resp.status)
	})
	t.Run("query and body", func(t *testing.T) {
		for _, r := range []req{
			{method: http.MethodGet, path: "/v1/account?owner_id=" + bob.owner.String()},
			{method: http.MethodGet, path: "/v1/credits/entries?owner_id=" + bob.owner.String()},
			{method: http.MethodGet, path: "/v1/credits/entries?ownerId=" + bob.owner.String()},
			{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":"Mallory","ownerId":"` + bob.owner.String() + `"}`},
			{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":"Mallory","owner_id":"` + bob.owner.String() + `"}`},
			{method: http.MethodPost, path: "/v1/sessions:revokeAll", body: `{"ownerId":"` + bob.owner.String() + `"}`},
		} {
			r.bearer = alice.token
			resp := s.do(r)
			require.Equal(t, http.StatusBadRequest, resp.status, "%s %s: %s", r.method, r.path, resp.body)
			code, _ := resp.rpcStatus(t)
			require.Equal(t, codes.InvalidArgument, code)
		}
		require.NotEqual(t, "Mallory", s.account(bob.token)["displayName"])
		require.NotEqual(t, "Mallory", s.account(alice.token)["displayName"])
	})
}

// testSecondTenant calls every tenant JSON route as bob with alice's IDs: bob gets what an ID
// that does not exist gets, and alice's data does not change.
func testSecondTenant(t *testing.T, s *stack) {
	alice := s.signIn("second-alice@example.com")
	bob := s.signIn("second-bob@example.com")
	require.Equal(t, http.StatusOK, s.do(req{method: http.MethodPatch, path: "/v1/account", bearer: alice.token, body: `{"displayName":"Alice"}`}).status)

	// Alice's ledger has a few entries, so her list has a page token.
	credits := tenantv1.NewCreditServiceClient(s.st.Dial(t, workload.Tenant, workload.Billing))
	for i := range 3 {
		_, err := credits.GrantCredits(background(), &tenantv1.GrantCreditsRequest{
			Amount: 100, Reason: "welcome", IdempotencyKey: fmt.Sprintf("grant-%d", i), OwnerId: alice.owner.String()})
		require.NoError(t, err)
	}
	page := s.do(req{method: http.MethodGet, path: "/v1/credits/entries?page_size=1", bearer: alice.token})
	require.Equal(t, http.StatusOK, page.status, "%s", page.body)
	alicePageToken := page.json(t)["nextPageToken"].(string)
	require.NotEmpty(t, alicePageToken)
	before := snapshot(t, s, alice)

	same := func(t *testing.T, foreign, missing req) {
		t.Helper()
		foreign.bearer, missing.bearer = bob.token, bob.token
		a, b := s.do(foreign), s.do(missing)
		require.Equal(t, b.status, a.status, "%s %s", foreign.method, foreign.path)
		require.GreaterOrEqual(t, a.status, 400)
		ca, ma := a.rpcStatus(t)
		cb, mb := b.rpcStatus(t)
		require.Equal(t, cb, ca)
		require.Equal(t, mb, ma, "the same message: an ID cannot be probed")
	}
	t.Run("DELETE /v1/sessions/{alice's session}", func(t *testing.T) {
		same(t, req{method: http.MethodDelete, path: "/v1/sessions/" + alice.sessionID},
			req{method: http.MethodDelete, path: "/v1/sessions/" + uuid.NewString()})
	})
	t.Run("GET /v1/credits/entries with alice's page token", func(t *testing.T) {
		same(t, req{method: http.MethodGet, path: "/v1/credits/entries?page_token=" + alicePageToken},
			req{method: http.MethodGet, path: "/v1/credits/entries?page_token=AAAAAAAAAAAAAAAAAAAAAAAA"})
	})
	t.Run("routes without IDs answer bob's own data", func(t *testing.T) {
		for _, r := range []req{
			{method: http.MethodGet, path: "/v1/account"},
			{method: http.MethodGet, path: "/v1/sessions"},
			{method: http.MethodGet, path: "/v1/credits"},
			{method: http.MethodGet, path: "/v1/credits/entries"},
			{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":"Bob"}`},
			{method: http.MethodPost, path: "/v1/sessions:revokeAll", body: `{}`},
		} {
			r.bearer = bob.token
			resp := s.do(r)
			require.Less(t, resp.status, 500, "%s %s: %s", r.method, r.path, resp.body)
			for _, secret := range []string{alice.owner.String(), alice.sessionID, alice.email, "Alice"} {
				require.NotContains(t, string(resp.body), secret, "%s %s", r.method, r.path)
			}
		}
	})
	require.Equal(t, before, snapshot(t, s, alice), "alice's data did not change")
}

// snapshot is what alice can read about herself.
func snapshot(t *testing.T, s *stack, who tenant) string {
	t.Helper()
	var parts []string
	for _, path := range []string{"/v1/account", "/v1/credits", "/v1/credits/entries?page_size=100", "/v1/sessions"} {
		resp := s.do(req{method: http.MethodGet, path: path, bearer: who.token})
		require.Equal(t, http.StatusOK, resp.status, "%s: %s", path, resp.body)
		parts = append(parts, string(resp.body))
	}
	return strings.Join(parts, "\n")
}

func testBadInput(t *testing.T, s *stack) {
	alice := s.signIn("bad-alice@example.com")
	before := snapshot(t, s, alice)
	long := strings.Repeat("x", 101)
	tests := []struct {
		name string
		r    req
		want int
	}{
		{name: "update: no field", r: req{method: http.MethodPatch, path: "/v1/account", body: `{}`}, want: 400},
		{name: "update: empty display name", r: req{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":""}`}, want: 400},
		{name: "update: display name too long", r: req{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":"` + long + `"}`}, want: 400},
		{name: "update: not an email", r: req{method: http.MethodPatch, path: "/v1/account", body: `{"notificationEmail":"nope"}`}, want: 400},
		{name: "update: wrong type", r: req{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":42}`}, want: 400},
		{name: "update: malformed JSON", r: req{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":`}, want: 400},
		{name: "update: unknown field", r: req{method: http.MethodPatch, path: "/v1/account", body: `{"plan":"PLAN_STUDIO"}`}, want: 400},
		{name: "update: oversize", r: req{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":"` + strings.Repeat("x", 2<<20) + `"}`}, want: 413},
		{name: "revoke: not a UUID", r: req{method: http.MethodDelete, path: "/v1/sessions/not-a-uuid"}, want: 400},
		{name: "revoke all: unknown field", r: req{method: http.MethodPost, path: "/v1/sessions:revokeAll", body: `{"all":true}`}, want: 400},
		{name: "revoke all: malformed JSON", r: req{method: http.MethodPost, path: "/v1/sessions:revokeAll", body: `{`}, want: 400},
		{name: "entries: page size too large", r: req{method: http.MethodGet, path: "/v1/credits/entries?page_size=1000"}, want: 400},
		{name: "entries: page size wrong type", r: req{method: http.MethodGet, path: "/v1/credits/entries?page_size=ten"}, want: 400},
		{name: "entries: malformed page token", r: req{method: http.MethodGet, path: "/v1/credits/entries?page_token=%21%21"}, want: 400},
		{name: "entries: page token too long", r: req{method: http.MethodGet, path: "/v1/credits/entries?page_token=" + strings.Repeat("A", 300)}, want: 400},
		{name: "entries: unknown parameter", r: req{method: http.MethodGet, path: "/v1/credits/entries?sort=asc"}, want: 400},
		{name: "credits: a query where none is taken", r: req{method: http.MethodGet, path: "/v1/credits?x=1"}, want: 400},
		{name: "sessions: a query where none is taken", r: req{method: http.MethodGet, path: "/v1/sessions?all=true"}, want: 400},
		{name: "no such route", r: req{method: http.MethodGet, path: "/v1/accounts"}, want: 404},
		{name: "wrong method", r: req{method: http.MethodPut, path: "/v1/account", body: `{}`}, want: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.bearer = alice.token
			resp := s.do(tt.r)
			require.Equal(t, tt.want, resp.status, "%s", resp.body)
			resp.rpcStatus(t)
		})
	}
	signIns := []struct {
		name string
		body string
		want int
	}{
		{name: "sign-in: missing id_token", body: `{"plan":"pro"}`, want: 400},
		{name: "sign-in: wrong type", body: `{"id_token":["x"]}`, want: 400},
		{name: "sign-in: malformed JSON", body: `{"id_token"`, want: 400},
		{name: "sign-in: unknown plan", body: `{"id_token":"` + s.idp.Token(t, testidp.Claims{Email: "new1@example.com"}) + `","plan":"gold"}`, want: 400},
		{name: "sign-in: unknown region", body: `{"id_token":"` + s.idp.Token(t, testidp.Claims{Email: "new2@example.com"}) + `","home_region":"mars"}`, want: 400},
		{name: "sign-in: eu-west needs studio", body: `{"id_token":"` + s.idp.Token(t, testidp.Claims{Email: "new3@example.com"}) + `","plan":"pro","home_region":"eu-west"}`, want: 400},
		{name: "sign-in: oversize", body: `{"id_token":"` + strings.Repeat("x", 128<<10) + `"}`, want: 413},
	}
	for _, tt := range signIns {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.do(req{method: http.MethodPost, path: "/v1/auth/signin", body: tt.body})
			require.Equal(t, tt.want, resp.status, "%s", resp.body)
			resp.rpcStatus(t)
			require.Empty(t, resp.header.Get("Set-Cookie"))
		})
	}
	require.Equal(t, before, snapshot(t, s, alice), "bad input changed nothing")
	t.Run("refused sign-ups created no tenant", func(t *testing.T) {
		for _, email := range []string{"new1@example.com", "new2@example.com", "new3@example.com"} {
			resp := s.do(req{method: http.MethodGet, path: "/v1/account", bearer: s.idp.Token(t, testidp.Claims{Email: email})})
			require.Equal(t, http.StatusUnauthorized, resp.status, "%s: %s", email, resp.body)
		}
	})
}

func testBrowserRules(t *testing.T, s *stack) {
	alice := s.signIn("browser-alice@example.com")
	t.Run("CORS allows the console origin only", func(t *testing.T) {
		for origin, allowed := range map[string]bool{s.origin: true, "https://app1.apps.localhost:8090": false, "https://evil.example": false} {
			resp := s.do(req{method: http.MethodOptions, path: "/v1/account", header: map[string]string{
				"Origin": origin, "Access-Control-Request-Method": "PATCH"}})
			if allowed {
				require.Equal(t, origin, resp.header.Get("Access-Control-Allow-Origin"))
			} else {
				require.Empty(t, resp.header.Get("Access-Control-Allow-Origin"), origin)
			}
		}
	})
	t.Run("cookie writes need the console Origin", func(t *testing.T) {
		patch := `{"displayName":"Cookie"}`
		resp := s.do(req{method: http.MethodPatch, path: "/v1/account", cookie: alice.token, body: patch})
		require.Equal(t, http.StatusForbidden, resp.status, "%s", resp.body)
		resp = s.do(req{method: http.MethodPatch, path: "/v1/account", cookie: alice.token, body: patch, header: map[string]string{"Origin": "https://app1.apps.localhost:8090"}})
		require.Equal(t, http.StatusForbidden, resp.status, "%s", resp.body)
		require.NotEqual(t, "Cookie", s.account(alice.token)["displayName"])
		resp = s.do(req{method: http.MethodPatch, path: "/v1/account", cookie: alice.token, body: patch, header: map[string]string{"Origin": s.origin}})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		resp = s.do(req{method: http.MethodGet, path: "/v1/account", cookie: alice.token})
		require.Equal(t, http.StatusOK, resp.status, "reads need no Origin")
	})
	t.Run("security headers", func(t *testing.T) {
		resp := s.do(req{method: http.MethodGet, path: "/v1/account", bearer: alice.token})
		require.Equal(t, "no-store", resp.header.Get("Cache-Control"))
		require.Equal(t, "nosniff", resp.header.Get("X-Content-Type-Options"))
		require.Contains(t, resp.header.Get("Content-Security-Policy"), "default-src 'none'")
		require.Len(t, resp.header.Get("X-Request-Id"), 32)
	})
	t.Run("OpenAPI documents", func(t *testing.T) {
		resp := s.do(req{method: http.MethodGet, path: "/openapi/forge/tenant/v1/tenant.swagger.json"})
		require.Equal(t, http.StatusOK, resp.status)
		require.Contains(t, string(resp.body), `"/v1/credits"`)
	})
}

func testLimits(t *testing.T, s *stack) {
	alice := s.signIn("limits-alice@example.com")
	t.Run("413", func(t *testing.T) {
		resp := s.do(req{method: http.MethodPatch, path: "/v1/account", bearer: alice.token, body: `{"displayName":"` + strings.Repeat("x", 2<<20) + `"}`})
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
		resp.rpcStatus(t)
	})
	t.Run("429 per tenant, with Retry-After", func(t *testing.T) {
		var last response
		for range 200 {
			last = s.do(req{method: http.MethodGet, path: "/v1/credits", bearer: alice.token})
			if last.status != http.StatusOK {
				break
			}
		}
		require.Equal(t, http.StatusTooManyRequests, last.status, "%s", last.body)
		code, _ := last.rpcStatus(t)
		require.Equal(t, codes.ResourceExhausted, code)
		require.NotEmpty(t, last.header.Get("Retry-After"))
		bob := s.signIn("limits-bob@example.com")
		require.Equal(t, http.StatusOK, s.do(req{method: http.MethodGet, path: "/v1/credits", bearer: bob.token}).status)
	})
}

func testLogs(t *testing.T, s *stack) {
	alice := s.signIn("logs-alice@example.com")
	idToken := s.idp.Token(t, testidp.Claims{Email: alice.email})
	s.do(req{method: http.MethodGet, path: "/v1/account", bearer: idToken})
	s.do(req{method: http.MethodGet, path: "/v1/account", cookie: alice.token})
	s.do(req{method: http.MethodPost, path: "/v1/auth/signout", bearer: alice.token})
	logs := s.st.Logs()
	require.Contains(t, logs, "http request")
	for _, secret := range []string{alice.token, alice.token[4:24], idToken, strings.Split(idToken, ".")[2]} {
		require.NotContains(t, logs, secret)
	}
}
