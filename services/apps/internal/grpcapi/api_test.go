package grpcapi_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
)

// TestAPI runs every scenario against one environment (starting the vault and tenant
// services takes a while; each scenario makes its own tenants, so they never meet).
func TestAPI(t *testing.T) {
	e := newEnv(t)
	t.Run("owner flow", func(t *testing.T) { e.t = t; testOwnerFlow(t, e) })
	for _, sc := range []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"matrix", testMatrix},
		{"collaborator removal", testCollaboratorRemoval},
		{"share links", testShareLinks},
		{"discover", testDiscover},
		{"pasted keys", testPastedKeys},
		{"uploads", testUploads},
		{"envelope", testEnvelope},
		{"pagination", testPagination},
		{"builder and audit", testBuilderAndAudit},
		{"system callers", testSystemCallers},
		{"bad input", testBadInput},
		{"disable restore purge", testDisableRestorePurge},
		{"purge event", testPurgeEvent},
	} {
		t.Run(sc.name, func(t *testing.T) {
			e.t = t
			mark := len(e.logs.String())
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("apps log of the scenario:\n%s", e.logs.String()[mark:])
				}
			})
			sc.run(t, e)
		})
	}
}

func testOwnerFlow(t *testing.T, e *env) {
	e.t = t
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	f := e.makeApp(alice, "Weather")
	ctx := as(t, alice)
	got, err := e.gateway.apps.GetApp(ctx, &appsv1.GetAppRequest{AppId: f.app})
	require.NoError(t, err)
	require.Equal(t, "Weather", got.GetApp().GetName())
	require.Equal(t, "made by alice", got.GetApp().GetDescription())
	require.Equal(t, appsv1.Role_ROLE_OWNER, got.GetApp().GetRole())
	require.EqualValues(t, 1, got.GetApp().GetCurrentVersion())
	require.Equal(t, appsv1.Visibility_VISIBILITY_PRIVATE, got.GetApp().GetVisibility())

	ps, err := e.gateway.prompts.ListPrompts(ctx, &appsv1.ListPromptsRequest{AppId: f.app})
	require.NoError(t, err)
	require.Len(t, ps.GetPrompts(), 1)
	require.Equal(t, "Build a weather dashboard for Weather", ps.GetPrompts()[0].GetText())

	file, err := e.gateway.versions.GetVersionFile(ctx, &appsv1.GetVersionFileRequest{AppId: f.app, Version: 1, Path: "index.html"})
	require.NoError(t, err)
	require.Equal(t, "<h1>Weather</h1>", string(file.GetFile().GetContent()))
	require.Equal(t, "text/html", file.GetFile().GetContentType())

	// Nothing tenant-authored is stored in plaintext.
	for _, secret := range []string{"Weather", "made by alice", "weather dashboard", "<h1>", "console.log", "sketch.png"} {
		require.Empty(t, e.grepStored(secret), "%q is stored in plaintext", secret)
	}
}
