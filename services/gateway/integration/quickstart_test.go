package integration_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/testkit/stacktest"
	"github.com/forgeapps/backbone/pkg/workload"
)

// TestQuickStart follows the README's "Quick start with curl" against a development-mode
// stack: tokens from the development identity provider, verified by the gateway through
// discovery and JWKS over HTTPS like any issuer's, exchanged for sessions; the account and
// the credit balance read; and a second tenant trying the first one's account.
func TestQuickStart(t *testing.T) {
	st := stacktest.Start(t, stacktest.Options{Services: []string{workload.Tenant, workload.Gateway}, DevMode: true})
	s := &stack{t: t, st: st, url: st.GatewayURL, client: st.HTTPClient(t)}

	devToken := func(email string) string {
		resp := s.do(req{method: http.MethodPost, path: "/dev/idp/token", body: `{"email":"` + email + `"}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		return resp.json(t)["id_token"].(string)
	}
	signIn := func(email string) tenant {
		resp := s.do(req{method: http.MethodPost, path: "/v1/auth/signin", body: `{"id_token":"` + devToken(email) + `"}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		m := resp.json(t)
		return tenant{email: email, token: m["sessionToken"].(string),
			sessionID: m["session"].(map[string]any)["sessionId"].(string)}
	}

	alice := signIn("alice@example.com")
	acct := s.account(alice.token)
	require.Equal(t, "alice@example.com", acct["email"])
	require.Equal(t, "us-east", acct["homeRegion"])
	aliceID := acct["ownerId"].(string)
	resp := s.do(req{method: http.MethodGet, path: "/v1/credits", bearer: alice.token})
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	require.Contains(t, resp.json(t), "balance")

	again := signIn("alice@example.com")
	require.Equal(t, aliceID, s.account(again.token)["ownerId"], "the same email signs into the same tenant")

	bob := signIn("bob@example.com")
	t.Run("bob asking for alice's account in a header gets his own", func(t *testing.T) {
		resp := s.do(req{method: http.MethodGet, path: "/v1/account", bearer: bob.token, header: map[string]string{
			"Grpc-Metadata-X-Forge-Owner-Id": aliceID, "X-Forge-Owner-Id": aliceID}})
		require.Equal(t, http.StatusOK, resp.status)
		require.Equal(t, "bob@example.com", resp.json(t)["account"].(map[string]any)["email"])
	})
	t.Run("in the query: refused", func(t *testing.T) {
		resp := s.do(req{method: http.MethodGet, path: "/v1/account?owner_id=" + aliceID, bearer: bob.token})
		require.Equal(t, http.StatusBadRequest, resp.status)
	})
	t.Run("ending alice's session: the answer of a session that does not exist", func(t *testing.T) {
		foreign := s.do(req{method: http.MethodDelete, path: "/v1/sessions/" + alice.sessionID, bearer: bob.token})
		missing := s.do(req{method: http.MethodDelete, path: "/v1/sessions/" + uuid.NewString(), bearer: bob.token})
		require.Equal(t, http.StatusNotFound, foreign.status)
		require.Equal(t, string(missing.body), string(foreign.body))
		s.account(alice.token)
	})
	t.Run("without a credential", func(t *testing.T) {
		resp := s.do(req{method: http.MethodGet, path: "/v1/account"})
		require.Equal(t, http.StatusUnauthorized, resp.status)
	})
}
