package devidp_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
	"github.com/forgeapps/backbone/services/gateway/internal/devidp"
)

// serve runs a provider over HTTPS, as the edge serves it, and returns it with a verifier
// configured exactly as the gateway configures one for a production issuer.
func serve(t *testing.T) (*devidp.Provider, *auth.Verifier, *httptest.Server) {
	t.Helper()
	var handler http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p, err := devidp.New(srv.URL+devidp.PathPrefix, "forge-dev-console", nil)
	require.NoError(t, err)
	handler = p.Handler()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: p.Issuer(), Audience: "forge-dev-console", Client: auth.HTTPClient(roots)})
	require.NoError(t, err)
	return p, v, srv
}

func TestTokensVerifyThroughDiscovery(t *testing.T) {
	_, v, srv := serve(t)
	resp, err := srv.Client().Post(srv.URL+devidp.PathPrefix+"/token", "application/json", strings.NewReader(`{"email":"alice@example.com"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		IDToken string `json:"id_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))

	id, err := v.Verify(context.Background(), body.IDToken)
	require.NoError(t, err)
	require.Equal(t, "alice@example.com", id.Email)
	require.True(t, id.EmailVerified)
	require.Equal(t, srv.URL+devidp.PathPrefix, id.Issuer)
}

func TestAnotherProvidersTokensAreRefused(t *testing.T) {
	p1, v1, _ := serve(t)
	p2, _, _ := serve(t)
	tok, err := p2.Token("alice@example.com")
	require.NoError(t, err)
	_, err = v1.Verify(context.Background(), tok)
	require.ErrorIs(t, err, auth.ErrInvalidToken)

	// The same email is the same subject across restarts (a new key), so a local tenant
	// survives a restart of the stack.
	a, err := p1.Token("alice@example.com")
	require.NoError(t, err)
	id1, err := v1.Verify(context.Background(), a)
	require.NoError(t, err)
	b, err := p2.Token("Alice@example.com")
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.Contains(t, b, ".")
	require.Equal(t, id1.Subject, subjectOf(t, b))
}

func subjectOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	var claims struct {
		Sub string `json:"sub"`
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &claims))
	return claims.Sub
}

func TestTokenRequestValidation(t *testing.T) {
	_, _, srv := serve(t)
	for _, body := range []string{`{}`, `{"email":"not an email"}`, `{"email":"Alice <alice@example.com>"}`, `{"email":"a@b.c","admin":true}`, `[`} {
		resp, err := srv.Client().Post(srv.URL+devidp.PathPrefix+"/token", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
	}
}
