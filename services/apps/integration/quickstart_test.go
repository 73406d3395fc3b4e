// Package integration_test runs the apps service as a binary with the real tenant,
// secrets-vault and gateway services (pkg/testkit/stacktest) and follows the README's
// "Apps: create, prompt, version, share, publish" through the gateway's JSON routes.
package integration_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/testkit/stacktest"
	"github.com/forgeapps/backbone/pkg/workload"
)

type client struct {
	t    *testing.T
	url  string
	http *http.Client
}

type response struct {
	status int
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

func (c *client) do(method, path, bearer, body string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	require.NoError(c.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return response{status: resp.StatusCode, body: b}
}

// signIn signs a person in through the development identity provider, as the README does.
func (c *client) signIn(email, plan string) string {
	c.t.Helper()
	tok := c.do(http.MethodPost, "/dev/idp/token", "", `{"email":"`+email+`"}`)
	require.Equal(c.t, http.StatusOK, tok.status, "%s", tok.body)
	resp := c.do(http.MethodPost, "/v1/auth/signin", "", `{"id_token":"`+tok.json(c.t)["id_token"].(string)+`","plan":"`+plan+`"}`)
	require.Equal(c.t, http.StatusOK, resp.status, "%s", resp.body)
	return resp.json(c.t)["sessionToken"].(string)
}

// The key pasted in the README's prompt: OpenAI's format, made up for the example.
const readmeKey = "sk-proj-u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzdocJ2isAj"

func TestQuickStart(t *testing.T) {
	st := stacktest.Start(t, stacktest.Options{
		Services: []string{workload.SecretsVault, workload.Tenant, workload.Apps, workload.Gateway},
		// Without sandbox-origin in this stack, the launcher sets no sandbox domain: give apps one.
		Env:     map[string][]string{workload.Apps: {"FORGE_SANDBOX_DOMAIN=apps.localhost:8090"}},
		DevMode: true,
	})
	c := &client{t: t, url: st.GatewayURL, http: st.HTTPClient(t)}
	alice := c.signIn("alice@example.com", "free")

	// Create an app.
	resp := c.do(http.MethodPost, "/v1/apps", alice, `{"name":"Weather","description":"Forecast for my city"}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	app := resp.json(t)["app"].(map[string]any)
	appID := app["appId"].(string)
	require.Equal(t, "VISIBILITY_PRIVATE", app["visibility"])

	// Add a prompt with a pasted key: the key goes to the vault, the prompt keeps a reference.
	resp = c.do(http.MethodPost, "/v1/apps/"+appID+"/prompts", alice,
		`{"kind":"KIND_PROMPT","text":"Show the weather. My OpenAI key is `+readmeKey+`"}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	require.NotContains(t, string(resp.body), readmeKey)
	added := resp.json(t)
	require.Len(t, added["secretsExtracted"], 1)
	name := added["secretsExtracted"].([]any)[0].(string)
	require.Equal(t, "Show the weather. My OpenAI key is {{secret:"+name+"}}", added["prompt"].(map[string]any)["text"])

	// Upload a version.
	html := base64.StdEncoding.EncodeToString([]byte("<h1>Weather</h1>"))
	resp = c.do(http.MethodPost, "/v1/apps/"+appID+"/versions", alice, `{"files":[{"path":"index.html","content":"`+html+`"}]}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	resp = c.do(http.MethodGet, "/v1/apps/"+appID+"/versions/1/files/index.html", alice, "")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	require.Equal(t, html, resp.json(t)["file"].(map[string]any)["content"])

	// Share it by link, then publish it.
	resp = c.do(http.MethodPost, "/v1/apps/"+appID+"/share-links", alice, `{"ttlSeconds":86400}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	link := resp.json(t)
	require.True(t, strings.HasPrefix(link["token"].(string), "fsl_"))
	require.Equal(t, "https://"+strings.ReplaceAll(appID, "-", "")+".apps.localhost:8090/?forge_share="+link["token"].(string), link["url"])
	// Collaborators need the studio plan; alice is on the free plan.
	resp = c.do(http.MethodPost, "/v1/apps/"+appID+"/collaborators", alice, `{"email":"bob@example.com","role":"ROLE_VIEWER"}`)
	require.Equal(t, http.StatusBadRequest, resp.status, "%s", resp.body)
	require.Contains(t, string(resp.body), "inviting collaborators needs the studio plan")
	resp = c.do(http.MethodPost, "/v1/apps/"+appID+":publish", alice, `{}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	listingID := resp.json(t)["listing"].(map[string]any)["listingId"].(string)

	// A second tenant: not the app, not the prompts; the listing, and a remix of it.
	bob := c.signIn("bob@example.com", "pro")
	foreign := c.do(http.MethodGet, "/v1/apps/"+appID, bob, "")
	missing := c.do(http.MethodGet, "/v1/apps/00000000-0000-4000-8000-000000000000", bob, "")
	require.Equal(t, http.StatusNotFound, foreign.status)
	require.Equal(t, string(missing.body), string(foreign.body))
	prompts := c.do(http.MethodGet, "/v1/apps/"+appID+"/prompts", bob, "")
	require.Equal(t, http.StatusNotFound, prompts.status)
	require.Equal(t, string(missing.body), string(prompts.body))
	resp = c.do(http.MethodGet, "/v1/discover/"+listingID, bob, "")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	resp = c.do(http.MethodPost, "/v1/discover/"+listingID+":remix", bob, `{"name":"My weather"}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	remix := resp.json(t)["app"].(map[string]any)["appId"].(string)
	resp = c.do(http.MethodGet, "/v1/apps/"+remix+"/prompts", bob, "")
	require.Equal(t, http.StatusOK, resp.status)
	require.Empty(t, resp.json(t)["prompts"], "a remix copies no prompt")

	// Anonymous: Discover only.
	resp = c.do(http.MethodGet, "/v1/discover", "", "")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	require.Contains(t, string(resp.body), listingID)
	require.Equal(t, http.StatusOK, c.do(http.MethodGet, "/v1/discover/"+listingID, "", "").status)
	require.Equal(t, http.StatusUnauthorized, c.do(http.MethodGet, "/v1/apps/"+appID, "", "").status)
	require.Equal(t, http.StatusUnauthorized, c.do(http.MethodGet, "/v1/apps/"+appID+"/prompts", "", "").status)

	// Unpublish: the listing is gone for everyone at once.
	resp = c.do(http.MethodPost, "/v1/apps/"+appID+":unpublish", alice, `{}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	require.Equal(t, http.StatusNotFound, c.do(http.MethodGet, "/v1/discover/"+listingID, "", "").status)

	require.NotContains(t, st.Logs(), readmeKey, "the pasted key is in no service's log")
}
