package edge_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
	"github.com/forgeapps/backbone/services/gateway/internal/edge"
	"github.com/forgeapps/backbone/services/gateway/internal/testidp"
)

func TestCredentialRequiredBeforeAnyServiceIsCalled(t *testing.T) {
	f := newFixture(t, options{})
	tests := []struct {
		name string
		r    req
	}{
		{name: "no credential", r: req{method: http.MethodGet, path: "/v1/account"}},
		{name: "no credential, write", r: req{method: http.MethodPatch, path: "/v1/account", body: `{"displayName":"x"}`}},
		{name: "basic auth", r: req{method: http.MethodGet, path: "/v1/account", header: map[string]string{"Authorization": "Basic YWxpY2U6cHc="}}},
		{name: "bearer garbage", r: req{method: http.MethodGet, path: "/v1/credits", bearer: "not-a-token"}},
		{name: "unknown session token", r: req{method: http.MethodGet, path: "/v1/credits", bearer: newToken()}},
		{name: "unknown session cookie", r: req{method: http.MethodGet, path: "/v1/sessions", cookie: newToken()}},
		{name: "malformed cookie", r: req{method: http.MethodGet, path: "/v1/sessions", cookie: "fgs_short"}},
		{name: "deletion route", r: req{method: http.MethodPost, path: "/v1/deletion:cancel", body: `{}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.do(tt.r)
			require.Equal(t, http.StatusUnauthorized, resp.status, "%s", resp.body)
			require.Equal(t, codes.Unauthenticated, resp.statusCode(t))
			require.Equal(t, "application/json", resp.header.Get("Content-Type"))
			require.NotEmpty(t, resp.header.Get("WWW-Authenticate"))
		})
	}
	require.Empty(t, f.tenant.allCalls(), "no service method ran for a request without a valid credential")
}

func TestIDTokensAreVerified(t *testing.T) {
	f := newFixture(t, options{})
	_, alice := f.signIn("alice@example.com")
	other := testidp.Start(t, f.idp.Audience) // same audience, different issuer and key
	valid := f.idp.Token(t, testidp.Claims{Email: "alice@example.com"})
	notVerified := false
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{name: "valid", token: valid, want: http.StatusOK},
		{name: "expired", token: f.idp.Token(t, testidp.Claims{Email: "alice@example.com", IssuedAt: time.Now().Add(-2 * time.Hour), Expiry: time.Now().Add(-time.Hour)}), want: http.StatusUnauthorized},
		{name: "tampered payload", token: testidp.Tamper(t, valid, "mallory@example.com"), want: http.StatusUnauthorized},
		{name: "forged signature under the issuer's key id", token: f.idp.TokenSignedBy(t, testidp.NewKey(t), testidp.Claims{Email: "alice@example.com"}), want: http.StatusUnauthorized},
		{name: "wrong issuer", token: other.Token(t, testidp.Claims{Email: "alice@example.com"}), want: http.StatusUnauthorized},
		{name: "another issuer's claim on our issuer's key", token: f.idp.Token(t, testidp.Claims{Email: "alice@example.com", Issuer: other.Issuer}), want: http.StatusUnauthorized},
		{name: "issuer claim spoofed on another issuer's key", token: other.Token(t, testidp.Claims{Email: "alice@example.com", Issuer: f.idp.Issuer}), want: http.StatusUnauthorized},
		{name: "wrong audience", token: f.idp.Token(t, testidp.Claims{Email: "alice@example.com", Audience: []string{"someone-else"}}), want: http.StatusUnauthorized},
		{name: "unsigned alg none", token: f.idp.UnsignedToken(t, testidp.Claims{Email: "alice@example.com"}), want: http.StatusUnauthorized},
		{name: "email not verified", token: f.idp.Token(t, testidp.Claims{Email: "alice@example.com", EmailVerified: &notVerified}), want: http.StatusBadRequest},
		{name: "valid token, no tenant yet", token: f.idp.Token(t, testidp.Claims{Email: "nobody@example.com"}), want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.tenant.callsOf("GetAccount"))
			resp := f.do(req{method: http.MethodGet, path: "/v1/account", bearer: tt.token})
			require.Equal(t, tt.want, resp.status, "%s", resp.body)
			calls := f.tenant.callsOf("GetAccount")
			if tt.want != http.StatusOK {
				require.Len(t, calls, before, "a refused token reaches no service")
				resp.statusCode(t)
				return
			}
			require.Len(t, calls, before+1)
			require.Equal(t, alice, calls[len(calls)-1].owner, "the owner comes from the verified token")
			require.Empty(t, calls[len(calls)-1].sessionID, "an ID token has no session")
		})
	}
	t.Run("sign-in refuses the same tokens", func(t *testing.T) {
		signIns := f.tenant.signInCalls()
		for _, tt := range tests {
			if tt.want != http.StatusUnauthorized || tt.name == "valid token, no tenant yet" {
				continue
			}
			resp := f.do(req{method: http.MethodPost, path: edge.SignInPath, body: `{"id_token":"` + tt.token + `"}`})
			require.Equal(t, http.StatusUnauthorized, resp.status, "%s: %s", tt.name, resp.body)
		}
		require.Equal(t, signIns, f.tenant.signInCalls(), "no refused token reached SignIn")
	})
}

func TestSessionCredentials(t *testing.T) {
	f := newFixture(t, options{})
	token, alice := f.signIn("alice@example.com")
	for _, tt := range []struct {
		name string
		r    req
	}{
		{name: "bearer", r: req{method: http.MethodGet, path: "/v1/account", bearer: token}},
		{name: "cookie", r: req{method: http.MethodGet, path: "/v1/account", cookie: token}},
		{name: "bearer wins over a bad cookie", r: req{method: http.MethodGet, path: "/v1/account", bearer: token, cookie: "garbage"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.do(tt.r)
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
			require.Equal(t, alice.String(), resp.json(t)["account"].(map[string]any)["ownerId"])
			calls := f.tenant.callsOf("GetAccount")
			require.NotEmpty(t, calls[len(calls)-1].sessionID, "the session is asserted with the owner")
		})
	}
}

func TestRevokedSessionStopsAtOnce(t *testing.T) {
	f := newFixture(t, options{cacheTTL: time.Minute})
	tests := []struct {
		name   string
		revoke func(t *testing.T, token, other string)
	}{
		{name: "sign-out", revoke: func(t *testing.T, token, _ string) {
			resp := f.do(req{method: http.MethodPost, path: edge.SignOutPath, bearer: token})
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
			cookie := resp.header.Get("Set-Cookie")
			require.Contains(t, cookie, auth.CookieName+"=;")
			require.Contains(t, cookie, "Max-Age=0")
		}},
		{name: "DELETE /v1/sessions/{id} from another session", revoke: func(t *testing.T, token, other string) {
			id := f.sessionID(token)
			resp := f.do(req{method: http.MethodDelete, path: "/v1/sessions/" + id, bearer: other})
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		}},
		{name: "revokeAll", revoke: func(t *testing.T, _, other string) {
			resp := f.do(req{method: http.MethodPost, path: "/v1/sessions:revokeAll", bearer: other, body: `{}`})
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			email := fmt.Sprintf("user%d@example.com", i)
			token, _ := f.signIn(email)
			other, _ := f.signIn(email)
			// Warm the cache: the next call is answered without asking the tenant service.
			require.Equal(t, http.StatusOK, f.do(req{method: http.MethodGet, path: "/v1/account", bearer: token}).status)
			calls := f.tenant.authenticateCalls()
			require.Equal(t, http.StatusOK, f.do(req{method: http.MethodGet, path: "/v1/account", bearer: token}).status)
			require.Equal(t, calls, f.tenant.authenticateCalls(), "the second call is served from the cache")

			tt.revoke(t, token, other)
			resp := f.do(req{method: http.MethodGet, path: "/v1/account", bearer: token})
			require.Equal(t, http.StatusUnauthorized, resp.status, "a revoked session stops at once, cache or not: %s", resp.body)
		})
	}
}

// sessionID reads the session ID of token through the edge.
func (f *fixture) sessionID(token string) string {
	f.t.Helper()
	before := len(f.tenant.callsOf("GetAccount"))
	require.Equal(f.t, http.StatusOK, f.do(req{method: http.MethodGet, path: "/v1/account", bearer: token}).status)
	calls := f.tenant.callsOf("GetAccount")
	require.Len(f.t, calls, before+1)
	return calls[len(calls)-1].sessionID
}

func TestSpoofedOwnerHasNoEffect(t *testing.T) {
	f := newFixture(t, options{})
	token, alice := f.signIn("alice@example.com")
	_, bob := f.signIn("bob@example.com")
	spoof := map[string]string{
		"Grpc-Metadata-X-Forge-Owner-Id":     bob.String(),
		"Grpc-Metadata-X-Forge-Owner-Region": "eu-west",
		"Grpc-Metadata-X-Forge-Session-Id":   "00000000-0000-4000-8000-000000000000",
		"X-Forge-Owner-Id":                   bob.String(),
		"X-Forge-Owner-Region":               "eu-west",
		"X-Forge-Session-Id":                 "00000000-0000-4000-8000-000000000000",
		"X-Forge-Request-Id":                 "spoofed",
		"Grpc-Metadata-Authorization":        "Bearer spoofed",
		"X-Forwarded-For":                    "203.0.113.9",
	}
	t.Run("headers of every kind, authenticated", func(t *testing.T) {
		resp := f.do(req{method: http.MethodGet, path: "/v1/account", bearer: token, header: spoof})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		calls := f.tenant.callsOf("GetAccount")
		last := calls[len(calls)-1]
		require.Equal(t, alice, last.owner, "the request acts as the authenticated tenant")
		require.Equal(t, []string{"us-east"}, last.md.Get(owner.MDOwnerRegion))
		require.Equal(t, []string{resp.header.Get("X-Request-Id")}, last.md.Get(owner.MDRequestID))
		require.NotEqual(t, "00000000-0000-4000-8000-000000000000", last.sessionID)
		for k := range last.md {
			require.False(t, strings.HasPrefix(k, "grpc-metadata"), "no client header reaches a service: %s", k)
		}
		require.Empty(t, last.md.Get("authorization"), "a person's credential never reaches a service")
		require.Empty(t, last.md.Get("cookie"))
		require.Equal(t, []string{"127.0.0.1"}, last.md.Get("x-forwarded-for"), "only the real peer address is forwarded")
	})
	t.Run("headers of every kind, unauthenticated", func(t *testing.T) {
		before := len(f.tenant.allCalls())
		resp := f.do(req{method: http.MethodGet, path: "/v1/account", header: spoof})
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.Len(t, f.tenant.allCalls(), before)
	})
	t.Run("owner in the query", func(t *testing.T) {
		before := len(f.tenant.allCalls())
		for _, q := range []string{"owner_id=", "ownerId=", "account.owner_id="} {
			resp := f.do(req{method: http.MethodGet, path: "/v1/account?" + q + bob.String(), bearer: token})
			require.Equal(t, http.StatusBadRequest, resp.status, "%s: %s", q, resp.body)
			require.Equal(t, codes.InvalidArgument, resp.statusCode(t))
		}
		require.Len(t, f.tenant.allCalls(), before, "refused before the service")
	})
	t.Run("owner in the body", func(t *testing.T) {
		before := len(f.tenant.allCalls())
		for _, body := range []string{`{"displayName":"x","ownerId":"` + bob.String() + `"}`, `{"displayName":"x","owner_id":"` + bob.String() + `"}`} {
			resp := f.do(req{method: http.MethodPatch, path: "/v1/account", bearer: token, body: body})
			require.Equal(t, http.StatusBadRequest, resp.status, "%s", resp.body)
		}
		require.Len(t, f.tenant.allCalls(), before)
	})
}

func TestCookieRequestsThatChangeStateMustComeFromTheConsole(t *testing.T) {
	f := newFixture(t, options{})
	token, _ := f.signIn("alice@example.com")
	patch := `{"displayName":"Alice"}`
	tests := []struct {
		name string
		r    req
		want int
	}{
		{name: "cookie, no Origin", r: req{method: http.MethodPatch, path: "/v1/account", cookie: token, body: patch}, want: http.StatusForbidden},
		{name: "cookie, sandbox app Origin", r: req{method: http.MethodPatch, path: "/v1/account", cookie: token, body: patch, header: map[string]string{"Origin": "https://app1.apps.test"}}, want: http.StatusForbidden},
		{name: "cookie, null Origin", r: req{method: http.MethodPatch, path: "/v1/account", cookie: token, body: patch, header: map[string]string{"Origin": "null"}}, want: http.StatusForbidden},
		{name: "cookie, console Origin", r: req{method: http.MethodPatch, path: "/v1/account", cookie: token, body: patch, header: map[string]string{"Origin": consoleOrigin}}, want: http.StatusOK},
		{name: "cookie read, no Origin", r: req{method: http.MethodGet, path: "/v1/account", cookie: token}, want: http.StatusOK},
		{name: "cookie sign-out, foreign Origin", r: req{method: http.MethodPost, path: edge.SignOutPath, cookie: token, header: map[string]string{"Origin": "https://evil.test"}}, want: http.StatusForbidden},
		{name: "bearer, no Origin", r: req{method: http.MethodPatch, path: "/v1/account", bearer: token, body: patch}, want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.tenant.callsOf("UpdateAccount"))
			resp := f.do(tt.r)
			require.Equal(t, tt.want, resp.status, "%s", resp.body)
			if tt.want == http.StatusForbidden {
				require.Equal(t, codes.PermissionDenied, resp.statusCode(t))
				require.Len(t, f.tenant.callsOf("UpdateAccount"), before, "refused before the service")
			}
		})
	}
}

func TestCORSAllowsTheConsoleOnly(t *testing.T) {
	f := newFixture(t, options{})
	for _, tt := range []struct {
		origin string
		allow  bool
	}{
		{origin: consoleOrigin, allow: true},
		{origin: "https://app1.apps.test"},
		{origin: "https://console.test.evil.test"},
		{origin: "null"},
	} {
		t.Run(tt.origin, func(t *testing.T) {
			resp := f.do(req{method: http.MethodOptions, path: "/v1/account", header: map[string]string{
				"Origin": tt.origin, "Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "content-type",
			}})
			got := resp.header.Get("Access-Control-Allow-Origin")
			if tt.allow {
				require.Equal(t, consoleOrigin, got)
				require.Equal(t, "true", resp.header.Get("Access-Control-Allow-Credentials"))
				return
			}
			require.Empty(t, got)
			require.Empty(t, resp.header.Get("Access-Control-Allow-Credentials"))
		})
	}
}

func TestBodyLimit(t *testing.T) {
	f := newFixture(t, options{maxBody: 4096})
	token, _ := f.signIn("alice@example.com")
	big := `{"displayName":"` + strings.Repeat("a", 5000) + `"}`
	t.Run("declared length", func(t *testing.T) {
		resp := f.do(req{method: http.MethodPatch, path: "/v1/account", bearer: token, body: big})
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
		resp.statusCode(t)
	})
	t.Run("chunked", func(t *testing.T) {
		hr, err := http.NewRequest(http.MethodPatch, f.url+"/v1/account", struct{ *strings.Reader }{strings.NewReader(big)})
		require.NoError(t, err)
		hr.ContentLength = -1
		hr.Header.Set("Authorization", "Bearer "+token)
		resp, err := f.client.Do(hr)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	})
	t.Run("sign-in", func(t *testing.T) {
		resp := f.do(req{method: http.MethodPost, path: edge.SignInPath, body: `{"id_token":"` + strings.Repeat("a", 70<<10) + `"}`})
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
	})
	require.Empty(t, f.tenant.callsOf("UpdateAccount"))
}

func TestRateLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		now := time.Now()
		f := newFixture(t, options{ipRate: 1, ipBurst: 3, now: func() time.Time { return now }})
		var last response
		for range 4 {
			last = f.do(req{method: http.MethodGet, path: "/v1/discover"})
		}
		require.Equal(t, http.StatusTooManyRequests, last.status)
		require.Equal(t, codes.ResourceExhausted, last.statusCode(t))
		require.Equal(t, "1", last.header.Get("Retry-After"))
	})
	t.Run("per tenant", func(t *testing.T) {
		now := time.Now()
		f := newFixture(t, options{tenantRate: 0.5, tenantBurst: 2, now: func() time.Time { return now }})
		alice, _ := f.signIn("alice@example.com")
		bob, _ := f.signIn("bob@example.com")
		for range 2 {
			require.Equal(t, http.StatusOK, f.do(req{method: http.MethodGet, path: "/v1/account", bearer: alice}).status)
		}
		resp := f.do(req{method: http.MethodGet, path: "/v1/account", bearer: alice})
		require.Equal(t, http.StatusTooManyRequests, resp.status)
		require.Equal(t, "2", resp.header.Get("Retry-After"))
		require.Equal(t, http.StatusOK, f.do(req{method: http.MethodGet, path: "/v1/account", bearer: bob}).status, "another tenant is not limited by alice")
	})
}

func TestPendingDeletionOnlyReachesTheDeletionRoutes(t *testing.T) {
	f := newFixture(t, options{})
	token, alice := f.signIn("alice@example.com")
	resp := f.do(req{method: http.MethodPost, path: "/v1/deletion", bearer: token, body: `{"confirm":"DELETE MY ACCOUNT"}`})
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)

	for _, tt := range []struct {
		name string
		r    req
		want int
	}{
		{name: "account", r: req{method: http.MethodGet, path: "/v1/account", bearer: token}, want: http.StatusForbidden},
		{name: "credits", r: req{method: http.MethodGet, path: "/v1/credits", bearer: token}, want: http.StatusForbidden},
		{name: "revoke all", r: req{method: http.MethodPost, path: "/v1/sessions:revokeAll", bearer: token, body: `{}`}, want: http.StatusForbidden},
		{name: "get deletion", r: req{method: http.MethodGet, path: "/v1/deletion", bearer: token}, want: http.StatusOK},
		{name: "receipt lookup with the session", r: req{method: http.MethodPost, path: "/v1/deletion-receipts:lookup", bearer: token,
			body: `{"receiptToken":"fgr_x"}`}, want: http.StatusOK},
		{name: "receipt lookup with a refused credential", r: req{method: http.MethodPost, path: "/v1/deletion-receipts:lookup",
			bearer: "not-a-token", body: `{"receiptToken":"fgr_x"}`}, want: http.StatusOK},
		{name: "receipt lookup without a credential", r: req{method: http.MethodPost, path: "/v1/deletion-receipts:lookup",
			body: `{"receiptToken":"fgr_x"}`}, want: http.StatusOK},
		{name: "cancel deletion", r: req{method: http.MethodPost, path: "/v1/deletion:cancel", bearer: token, body: `{}`}, want: http.StatusOK},
		{name: "sign-out", r: req{method: http.MethodPost, path: edge.SignOutPath, bearer: token}, want: http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.do(tt.r)
			require.Equal(t, tt.want, resp.status, "%s", resp.body)
			if tt.want == http.StatusForbidden {
				require.Equal(t, codes.FailedPrecondition, resp.statusCode(t))
				require.Contains(t, resp.json(t)["message"], "pending deletion")
			}
		})
	}
	require.Empty(t, f.tenant.callsOf("GetAccount"), "nothing but the deletion routes reached a service")
	require.Len(t, f.tenant.callsOf("CancelDeletion"), 1)
	require.Equal(t, alice, f.tenant.callsOf("CancelDeletion")[0].owner)
	require.Len(t, f.tenant.callsOf("GetDeletion"), 1)
	require.Equal(t, alice, f.tenant.callsOf("GetDeletion")[0].owner)
	lookups := f.tenant.callsOf("GetDeletionByReceipt")
	require.Len(t, lookups, 3, "the receipt lookup reached data-lifecycle as a system call, signed in or not")
	for _, c := range lookups {
		require.True(t, c.owner.IsZero(), "no owner on the receipt lookup")
	}
}

func TestEveryResponseCarriesARequestIDAndSecurityHeaders(t *testing.T) {
	f := newFixture(t, options{})
	token, _ := f.signIn("alice@example.com")
	seen := map[string]bool{}
	for _, r := range []req{
		{method: http.MethodGet, path: "/v1/account", bearer: token},
		{method: http.MethodGet, path: "/v1/account"},
		{method: http.MethodGet, path: "/v1/nope", bearer: token},
		{method: http.MethodPut, path: "/v1/account", bearer: token},
		{method: http.MethodGet, path: edge.SignInPath},
		{method: http.MethodGet, path: "/openapi/"},
	} {
		resp := f.do(r)
		id := resp.header.Get("X-Request-Id")
		require.Len(t, id, 32, "%s %s", r.method, r.path)
		require.False(t, seen[id], "request IDs are unique")
		seen[id] = true
		require.Equal(t, "no-store", resp.header.Get("Cache-Control"))
		require.Equal(t, "nosniff", resp.header.Get("X-Content-Type-Options"))
		require.Contains(t, resp.header.Get("Content-Security-Policy"), "default-src 'none'")
		require.Contains(t, resp.header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
		if resp.status >= 400 {
			resp.statusCode(t)
		}
	}
}

func TestSignIn(t *testing.T) {
	f := newFixture(t, options{})
	tok := f.idp.Token(t, testidp.Claims{Email: "alice@example.com"})
	t.Run("sets the console cookie and returns the token", func(t *testing.T) {
		resp := f.do(req{method: http.MethodPost, path: edge.SignInPath, body: `{"idToken":"` + tok + `","plan":"pro","homeRegion":"us-east"}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		m := resp.json(t)
		token := m["sessionToken"].(string)
		require.True(t, auth.IsSessionToken(token))
		cookies := resp.header.Values("Set-Cookie")
		require.Len(t, cookies, 1)
		c := cookies[0]
		require.True(t, strings.HasPrefix(c, auth.CookieName+"="+token+";"), c)
		for _, attr := range []string{"Path=/", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age="} {
			require.Contains(t, c, attr)
		}
		require.NotContains(t, c, "Domain=")
	})
	signIns := f.tenant.signInCalls()
	tests := []struct {
		name   string
		body   string
		ctype  string
		origin string
		want   int
	}{
		{name: "malformed JSON", body: `{"id_token": `, want: http.StatusBadRequest},
		{name: "not an object", body: `["x"]`, want: http.StatusBadRequest},
		{name: "missing id_token", body: `{"plan":"free"}`, want: http.StatusBadRequest},
		{name: "empty id_token", body: `{"id_token":""}`, want: http.StatusBadRequest},
		{name: "wrong type", body: `{"id_token": 42}`, want: http.StatusBadRequest},
		{name: "unknown field", body: `{"id_token":"` + tok + `","owner_id":"x"}`, want: http.StatusBadRequest},
		{name: "both spellings", body: `{"id_token":"` + tok + `","idToken":"` + tok + `"}`, want: http.StatusBadRequest},
		{name: "unknown plan", body: `{"id_token":"` + tok + `","plan":"platinum"}`, want: http.StatusBadRequest},
		{name: "not JSON", body: `id_token=x`, ctype: "application/x-www-form-urlencoded", want: http.StatusUnsupportedMediaType},
		{name: "foreign origin", body: `{"id_token":"` + tok + `"}`, origin: "https://evil.test", want: http.StatusForbidden},
		{name: "invalid ID token", body: `{"id_token":"` + f.idp.UnsignedToken(t, testidp.Claims{}) + `"}`, want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.ctype != "" {
				h["Content-Type"] = tt.ctype
			}
			if tt.origin != "" {
				h["Origin"] = tt.origin
			}
			resp := f.do(req{method: http.MethodPost, path: edge.SignInPath, body: tt.body, header: h})
			require.Equal(t, tt.want, resp.status, "%s", resp.body)
			resp.statusCode(t)
			require.Empty(t, resp.header.Get("Set-Cookie"))
		})
	}
	require.Equal(t, signIns, f.tenant.signInCalls(), "no refused sign-in reached the tenant service")
	t.Run("GET", func(t *testing.T) {
		resp := f.do(req{method: http.MethodGet, path: edge.SignInPath})
		require.Equal(t, http.StatusMethodNotAllowed, resp.status)
	})
}

func TestSignOutWithAnIDTokenIsRefused(t *testing.T) {
	f := newFixture(t, options{})
	f.signIn("alice@example.com")
	resp := f.do(req{method: http.MethodPost, path: edge.SignOutPath, bearer: f.idp.Token(t, testidp.Claims{Email: "alice@example.com"})})
	require.Equal(t, http.StatusBadRequest, resp.status)
	require.Equal(t, codes.FailedPrecondition, resp.statusCode(t))
}

func TestAccessLogsHoldNoCredentials(t *testing.T) {
	f := newFixture(t, options{})
	idToken := f.idp.Token(t, testidp.Claims{Email: "alice@example.com"})
	token, _ := f.signIn("alice@example.com")
	f.do(req{method: http.MethodGet, path: "/v1/account", bearer: token})
	f.do(req{method: http.MethodGet, path: "/v1/account", cookie: token})
	f.do(req{method: http.MethodGet, path: "/v1/account", bearer: idToken})
	f.do(req{method: http.MethodGet, path: "/v1/account", bearer: testidp.Tamper(t, idToken, "x@example.com")})
	f.do(req{method: http.MethodGet, path: "/v1/credits/entries?page_token=secretpagetoken", bearer: token})
	f.do(req{method: http.MethodPost, path: edge.SignOutPath, cookie: token, header: map[string]string{"Origin": consoleOrigin}})

	logs := f.logs.String()
	require.Contains(t, logs, `"msg":"http request"`)
	require.Contains(t, logs, `"auth":"cookie"`)
	for _, secret := range []string{token, token[4:20], idToken, strings.Split(idToken, ".")[1], strings.Split(idToken, ".")[2], "secretpagetoken"} {
		require.NotContains(t, logs, secret)
	}
}

func TestDocsAreServed(t *testing.T) {
	f := newFixture(t, options{})
	resp := f.do(req{method: http.MethodGet, path: "/openapi/"})
	require.Equal(t, http.StatusOK, resp.status)
	require.Contains(t, string(resp.body), "/openapi/forge/tenant/v1/tenant.swagger.json")
	resp = f.do(req{method: http.MethodGet, path: "/openapi/forge/tenant/v1/tenant.swagger.json"})
	require.Equal(t, http.StatusOK, resp.status)
	require.Contains(t, string(resp.body), "/v1/account")
	resp = f.do(req{method: http.MethodGet, path: "/openapi/../go.mod"})
	require.Equal(t, http.StatusNotFound, resp.status)
}

func TestStatusesAreRefusedExceptActiveAndPending(t *testing.T) {
	f := newFixture(t, options{cacheTTL: time.Nanosecond})
	token, alice := f.signIn("alice@example.com")
	f.tenant.setStatus(alice, tenantv1.AccountStatus_ACCOUNT_STATUS_PURGED)
	resp := f.do(req{method: http.MethodGet, path: "/v1/account", bearer: token})
	require.Equal(t, http.StatusUnauthorized, resp.status)
}
