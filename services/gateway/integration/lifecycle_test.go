package integration_test

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/forgeapps/backbone/pkg/workload"
)

// startLifecycle runs the gateway in front of the real tenant, apps, secrets-vault and
// data-lifecycle binaries.
func startLifecycle(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	signing := filepath.Join(dir, "signing.pem")
	require.NoError(t, os.WriteFile(signing, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	return startServices(t,
		[]string{workload.SecretsVault, workload.Tenant, workload.Apps, workload.DataLifecycle, workload.Gateway},
		map[string][]string{workload.DataLifecycle: {
			"FORGE_BACKUP_BLOB_URL=file://" + dir,
			"FORGE_CERT_SIGNING_KEY=" + signing,
			"FORGE_LIFECYCLE_TICK=200ms",
		}})
}

// TestLifecycleRoutes drives data-lifecycle's routes through the real gateway and services:
// the export archive downloaded as a streamed zip, the deletion receipt read with no
// credential (the receipt is the credential; data-lifecycle runs it as a system method), and
// a tenant pending deletion reaching its deletion and nothing else.
func TestLifecycleRoutes(t *testing.T) {
	s := startLifecycle(t)
	alice := s.signIn("lifecycle-alice@example.com")

	// A reference of 1 MiB of incompressible text: the archive is several download chunks
	// (one google.api.HttpBody message each), so any byte the edge adds between them shows.
	content := make([]byte, 1<<20)
	_, err := rand.Read(content)
	require.NoError(t, err)
	text := base64.StdEncoding.EncodeToString(content)[:1<<20]
	resp := s.do(req{method: http.MethodPost, path: "/v1/apps", bearer: alice.token, body: `{"name":"Export me"}`})
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	appID := resp.json(t)["app"].(map[string]any)["appId"].(string)
	resp = s.do(req{method: http.MethodPost, path: "/v1/apps/" + appID + "/references", bearer: alice.token,
		body: `{"filename":"notes.txt","contentType":"text/plain","content":"` + base64.StdEncoding.EncodeToString([]byte(text)) + `"}`})
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)

	t.Run("export archive is a streamed zip", func(t *testing.T) {
		resp := s.do(req{method: http.MethodPost, path: "/v1/exports", bearer: alice.token, body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		id := resp.json(t)["export"].(map[string]any)["exportId"].(string)
		require.Eventually(t, func() bool {
			resp := s.do(req{method: http.MethodGet, path: "/v1/exports/" + id, bearer: alice.token})
			return resp.status == http.StatusOK && resp.json(t)["export"].(map[string]any)["state"] == "EXPORT_STATE_READY"
		}, 90*time.Second, 200*time.Millisecond, "the export to be ready")
		resp = s.do(req{method: http.MethodPost, path: "/v1/exports/" + id + ":downloadLink", bearer: alice.token, body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		link := resp.json(t)["url"].(string)
		require.True(t, strings.HasPrefix(link, "/v1/exports/"+id+"/archive?token="), link)

		anon := s.do(req{method: http.MethodGet, path: link})
		require.Equal(t, http.StatusUnauthorized, anon.status, "the archive needs the owner's credential too")

		zipped := s.do(req{method: http.MethodGet, path: link, bearer: alice.token})
		require.Equal(t, http.StatusOK, zipped.status, "%s", zipped.body)
		require.Equal(t, "application/zip", zipped.header.Get("Content-Type"), "raw bytes, not JSON")
		require.Greater(t, len(zipped.body), 3*(256<<10), "several download chunks")
		zr, err := zip.NewReader(bytes.NewReader(zipped.body), int64(len(zipped.body)))
		require.NoError(t, err, "the body is exactly the zip")
		var names []string
		found := false
		for _, f := range zr.File {
			names = append(names, f.Name)
			rc, err := f.Open()
			require.NoError(t, err)
			var b bytes.Buffer
			_, err = b.ReadFrom(rc)
			require.NoError(t, err, "%s opens and its checksum holds", f.Name)
			require.NoError(t, rc.Close())
			found = found || bytes.Contains(b.Bytes(), []byte(text))
		}
		require.Contains(t, names, "manifest.json")
		require.True(t, found, "the reference is in the archive, byte for byte: %v", names)

		again := s.do(req{method: http.MethodGet, path: link, bearer: alice.token})
		require.Equal(t, http.StatusNotFound, again.status, "the link is single-use")
		code, _ := again.rpcStatus(t)
		require.Equal(t, codes.NotFound, code)
	})

	t.Run("deletion receipt and a pending tenant", func(t *testing.T) {
		resp := s.do(req{method: http.MethodPost, path: "/v1/deletion", bearer: alice.token, body: `{"confirm":"DELETE MY ACCOUNT"}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		receipt := resp.json(t)["receiptToken"].(string)
		require.True(t, strings.HasPrefix(receipt, "fgr_"), receipt)
		// The request revoked every session; signing in again gives a session that may only
		// reach the deletion routes.
		revoked := alice.token
		alice := s.signIn(alice.email)
		lookup := func(bearer, token string) response {
			return s.do(req{method: http.MethodPost, path: "/v1/deletion-receipts:lookup", bearer: bearer, body: `{"receiptToken":"` + token + `"}`})
		}
		for _, tc := range []struct {
			name   string
			bearer string
		}{
			{"without a credential", ""},
			{"with the pending tenant's session", alice.token},
			{"with a revoked session", revoked},
			{"with a malformed credential", "not-a-token"},
		} {
			t.Run("receipt lookup "+tc.name, func(t *testing.T) {
				resp := lookup(tc.bearer, receipt)
				require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
				require.Equal(t, "DELETION_STATE_PENDING", resp.json(t)["deletion"].(map[string]any)["state"])
			})
		}
		unknown := lookup("", "fgr_"+strings.Repeat("A", 43))
		require.Equal(t, http.StatusNotFound, unknown.status, "%s", unknown.body)

		// Pending deletion: the deletion routes, nothing else.
		resp = s.do(req{method: http.MethodGet, path: "/v1/deletion", bearer: alice.token})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Equal(t, "DELETION_STATE_PENDING", resp.json(t)["deletion"].(map[string]any)["state"])
		resp = s.do(req{method: http.MethodGet, path: "/v1/account", bearer: alice.token})
		require.Equal(t, http.StatusForbidden, resp.status, "%s", resp.body)
		code, _ := resp.rpcStatus(t)
		require.Equal(t, codes.FailedPrecondition, code)
		resp = s.do(req{method: http.MethodPost, path: "/v1/exports", bearer: alice.token, body: `{}`})
		require.Equal(t, http.StatusForbidden, resp.status, "%s", resp.body)
		resp = s.do(req{method: http.MethodPost, path: "/v1/deletion:cancel", bearer: alice.token, body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Eventually(t, func() bool {
			return s.do(req{method: http.MethodGet, path: "/v1/account", bearer: alice.token}).status == http.StatusOK
		}, 30*time.Second, 100*time.Millisecond, "the cancelled deletion gives the account back")
		resp = lookup("", receipt)
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Equal(t, "DELETION_STATE_CANCELLED", resp.json(t)["deletion"].(map[string]any)["state"])
	})
}
