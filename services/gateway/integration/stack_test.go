package integration_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/stacktest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
	"github.com/forgeapps/backbone/services/gateway/internal/testidp"
)

const audience = "forge-console"

// stack is the real gateway in front of the real tenant service, trusting a test identity
// provider (production mode: no development identity provider).
type stack struct {
	t      testing.TB
	st     *stacktest.Stack
	idp    *testidp.IdP
	url    string
	origin string
	client *http.Client
}

func start(t testing.TB, gatewayEnv ...string) *stack {
	t.Helper()
	return startServices(t, []string{workload.Tenant, workload.Gateway}, nil, gatewayEnv...)
}

// startServices starts the gateway (last of services) with the other services given, each
// with its extra variables.
func startServices(t testing.TB, services []string, env map[string][]string, gatewayEnv ...string) *stack {
	t.Helper()
	idp := testidp.Start(t, audience)
	caFile := filepath.Join(t.TempDir(), "idp-ca.pem")
	require.NoError(t, os.WriteFile(caFile, idp.CertPEM, 0o600))
	gw := append([]string{
		"FORGE_OIDC_ISSUER=" + idp.Issuer,
		"FORGE_OIDC_AUDIENCE=" + audience,
		"FORGE_OIDC_CA=" + caFile,
		"FORGE_RATE_IP_RPS=100000", "FORGE_RATE_IP_BURST=100000",
	}, gatewayEnv...)
	all := map[string][]string{workload.Gateway: gw}
	for svc, vars := range env {
		all[svc] = append(all[svc], vars...)
	}
	st := stacktest.Start(t, stacktest.Options{Services: services, Env: all})
	return &stack{t: t, st: st, idp: idp, url: st.GatewayURL, origin: st.Env(workload.Gateway, "FORGE_CONSOLE_ORIGIN"), client: st.HTTPClient(t)}
}

type req struct {
	method, path string
	body         string
	header       map[string]string
	bearer       string
	cookie       string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// rpcStatus checks the body is a google.rpc.Status and returns its code and message.
func (r response) rpcStatus(t testing.TB) (codes.Code, string) {
	t.Helper()
	m := r.json(t)
	require.Contains(t, m, "code", "an error body is a google.rpc.Status: %s", r.body)
	msg, _ := m["message"].(string)
	require.NotEmpty(t, msg, "errors say what is wrong: %s", r.body)
	return codes.Code(m["code"].(float64)), msg
}

func (s *stack) do(r req) response {
	s.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, s.url+r.path, body)
	require.NoError(s.t, err)
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
	resp, err := s.client.Do(hr)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// tenant is a person signed in through the edge.
type tenant struct {
	email     string
	token     string
	owner     owner.ID
	sessionID string
}

func (s *stack) signIn(email string, extra ...string) tenant {
	s.t.Helper()
	idToken := s.idp.Token(s.t, testidp.Claims{Email: email})
	body := `{"id_token":"` + idToken + `"` + strings.Join(extra, "") + `}`
	resp := s.do(req{method: http.MethodPost, path: "/v1/auth/signin", body: body})
	require.Equal(s.t, http.StatusOK, resp.status, "sign-in: %s", resp.body)
	m := resp.json(s.t)
	acct := m["account"].(map[string]any)
	return tenant{
		email:     email,
		token:     m["sessionToken"].(string),
		owner:     owner.MustParse(acct["ownerId"].(string)),
		sessionID: m["session"].(map[string]any)["sessionId"].(string),
	}
}

// account reads a tenant's account through the edge.
func (s *stack) account(tok string) map[string]any {
	s.t.Helper()
	resp := s.do(req{method: http.MethodGet, path: "/v1/account", bearer: tok})
	require.Equal(s.t, http.StatusOK, resp.status, "%s", resp.body)
	return resp.json(s.t)["account"].(map[string]any)
}

func background() context.Context { return context.Background() }
