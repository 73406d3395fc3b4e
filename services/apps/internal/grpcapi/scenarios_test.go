package grpcapi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/apps/internal/keyscan"
)

func testCollaboratorRemoval(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	victor := e.signUp("victor", tenantv1.Plan_PLAN_FREE)
	eddie := e.signUp("eddie", tenantv1.Plan_PLAN_FREE)
	f := e.makeApp(alice, "Team")
	e.share(alice, &f, victor, eddie)

	_, err := e.gateway.prompts.AddPrompt(as(t, eddie), &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_PROMPT, Text: "by eddie"})
	require.NoError(t, err)
	list, err := e.gateway.apps.ListApps(as(t, victor), &appsv1.ListAppsRequest{Shared: true})
	require.NoError(t, err)
	require.Len(t, list.GetApps(), 1)
	require.Equal(t, "Team", list.GetApps()[0].GetName())
	require.Equal(t, appsv1.Role_ROLE_VIEWER, list.GetApps()[0].GetRole())
	viewer, err := e.sandbox.internal.CheckViewer(ctxT(t), &appsv1.CheckViewerRequest{AppId: f.app, ViewerOwnerId: victor.id.String()})
	require.NoError(t, err)
	require.Equal(t, appsv1.Role_ROLE_VIEWER, viewer.GetRole())
	require.Equal(t, alice.id.String(), viewer.GetOwnerId())

	_, err = e.gateway.sharing.RemoveCollaborator(as(t, alice), &appsv1.RemoveCollaboratorRequest{AppId: f.app, CollaboratorId: f.viewer})
	require.NoError(t, err)
	// The very next request is refused, through every path.
	_, err = e.gateway.apps.GetApp(as(t, victor), &appsv1.GetAppRequest{AppId: f.app})
	requireCode(t, codes.NotFound, err)
	_, err = e.gateway.prompts.ListPrompts(as(t, victor), &appsv1.ListPromptsRequest{AppId: f.app})
	requireCode(t, codes.NotFound, err)
	_, err = e.sandbox.internal.CheckViewer(ctxT(t), &appsv1.CheckViewerRequest{AppId: f.app, ViewerOwnerId: victor.id.String()})
	requireCode(t, codes.NotFound, err)
	list, err = e.gateway.apps.ListApps(as(t, victor), &appsv1.ListAppsRequest{Shared: true})
	require.NoError(t, err)
	require.Empty(t, list.GetApps())
	// The editor keeps access.
	_, err = e.gateway.apps.GetApp(as(t, eddie), &appsv1.GetAppRequest{AppId: f.app})
	require.NoError(t, err)
	require.Contains(t, e.outboxReasons(alice.id), "REASON_COLLABORATOR_REMOVED")

	// Inviting needs the studio plan; the owner cannot invite themself.
	free := e.signUp("free", tenantv1.Plan_PLAN_FREE)
	g := e.makeApp(free, "Solo")
	_, err = e.gateway.sharing.AddCollaborator(as(t, free), &appsv1.AddCollaboratorRequest{AppId: g.app, Email: victor.email, Role: appsv1.Role_ROLE_VIEWER})
	requireCode(t, codes.FailedPrecondition, err)
	_, err = e.gateway.sharing.AddCollaborator(as(t, alice), &appsv1.AddCollaboratorRequest{AppId: f.app, Email: alice.email, Role: appsv1.Role_ROLE_VIEWER})
	requireCode(t, codes.InvalidArgument, err)
	_, err = e.gateway.sharing.AddCollaborator(as(t, alice), &appsv1.AddCollaboratorRequest{AppId: f.app, Email: eddie.email, Role: appsv1.Role_ROLE_VIEWER})
	requireCode(t, codes.AlreadyExists, err)
}

func testShareLinks(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	f := e.makeApp(alice, "Linked")
	other := e.makeApp(alice, "Other")
	ctx := as(t, alice)
	link, err := e.gateway.sharing.CreateShareLink(ctx, &appsv1.CreateShareLinkRequest{AppId: f.app, TtlSeconds: 3600})
	require.NoError(t, err)
	tok := link.GetToken()
	require.True(t, strings.HasPrefix(tok, "fsl_"))
	require.Equal(t, "https://"+label(f.app)+"."+sandboxDomain+"/?forge_share="+tok, link.GetUrl())
	require.Empty(t, e.grepStored(tok), "only the token's hash is stored")
	got, err := e.gateway.apps.GetApp(ctx, &appsv1.GetAppRequest{AppId: f.app})
	require.NoError(t, err)
	require.Equal(t, appsv1.Visibility_VISIBILITY_LINK, got.GetApp().GetVisibility())

	check := func(app, token string) error {
		_, err := e.sandbox.internal.CheckShareToken(ctxT(t), &appsv1.CheckShareTokenRequest{AppId: app, Token: token})
		return err
	}
	require.NoError(t, check(f.app, tok))
	requireCode(t, codes.NotFound, check(other.app, tok), "a token opens its own app only")
	// One character changed (to one it is not: a fixed "A" was the same one time in 64).
	last := "A"
	if strings.HasSuffix(tok, last) {
		last = "B"
	}
	tampered := tok[:len(tok)-1] + last
	require.NotEqual(t, tok, tampered)
	requireCode(t, codes.NotFound, check(f.app, tampered))
	requireCode(t, codes.NotFound, check(f.app, "not-a-token"))
	listed, err := e.gateway.sharing.ListShareLinks(ctx, &appsv1.ListShareLinksRequest{AppId: f.app})
	require.NoError(t, err)
	require.Len(t, listed.GetLinks(), 1)

	// Revoked: refused at once.
	_, err = e.gateway.sharing.RevokeShareLink(ctx, &appsv1.RevokeShareLinkRequest{AppId: f.app, LinkId: link.GetLink().GetLinkId()})
	require.NoError(t, err)
	requireCode(t, codes.NotFound, check(f.app, tok))
	require.Contains(t, e.outboxReasons(alice.id), "REASON_LINK_REVOKED")
	_, err = e.gateway.sharing.RevokeShareLink(ctx, &appsv1.RevokeShareLinkRequest{AppId: f.app, LinkId: link.GetLink().GetLinkId()})
	requireCode(t, codes.NotFound, err, "revoking twice")

	// Expired: refused. The clock of the check is the database's, so the link's expiry is
	// moved into the past rather than waited for.
	link2, err := e.gateway.sharing.CreateShareLink(ctx, &appsv1.CreateShareLinkRequest{AppId: f.app})
	require.NoError(t, err)
	require.NoError(t, check(f.app, link2.GetToken()))
	_, err = e.pg.Migrator.Exec(ctxT(t), `update share_links set expires_at = now() - interval '1 second' where id = $1`, link2.GetLink().GetLinkId())
	require.NoError(t, err)
	requireCode(t, codes.NotFound, check(f.app, link2.GetToken()))

	// Back to private: every link stops.
	link3, err := e.gateway.sharing.CreateShareLink(ctx, &appsv1.CreateShareLinkRequest{AppId: f.app})
	require.NoError(t, err)
	require.NoError(t, check(f.app, link3.GetToken()))
	_, err = e.gateway.apps.UpdateApp(ctx, &appsv1.UpdateAppRequest{AppId: f.app, Visibility: appsv1.Visibility_VISIBILITY_PRIVATE})
	require.NoError(t, err)
	requireCode(t, codes.NotFound, check(f.app, link3.GetToken()))
	_, err = e.gateway.apps.UpdateApp(ctx, &appsv1.UpdateAppRequest{AppId: f.app, Visibility: appsv1.Visibility_VISIBILITY_PUBLIC})
	requireCode(t, codes.FailedPrecondition, err, "public only by publishing")
}

func testDiscover(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	bob := e.signUp("bob", tenantv1.Plan_PLAN_FREE)
	victor := e.signUp("victor", tenantv1.Plan_PLAN_FREE)
	f := e.makeApp(alice, "Public thing")
	e.share(alice, &f, victor, victor2(e))
	before := e.objects()

	l, err := e.gateway.discover.GetListing(anonymous(t), &appsv1.GetListingRequest{ListingId: f.listing})
	require.NoError(t, err)
	require.Equal(t, "Public thing", l.GetListing().GetName())
	require.Equal(t, "https://"+label(f.app)+"."+sandboxDomain+"/", l.GetListing().GetUrl())
	require.Len(t, l.GetListing().GetFiles(), 2)
	file, err := e.gateway.discover.GetListingFile(anonymous(t), &appsv1.GetListingFileRequest{ListingId: f.listing, Path: "index.html"})
	require.NoError(t, err)
	require.Equal(t, "<h1>Public thing</h1>", string(file.GetFile().GetContent()))
	_, err = e.gateway.discover.GetListingFile(anonymous(t), &appsv1.GetListingFileRequest{ListingId: f.listing, Path: "secret.html"})
	requireCode(t, codes.NotFound, err)
	sv, err := e.sandbox.internal.GetServableApp(ctxT(t), &appsv1.GetServableAppRequest{AppId: f.app})
	require.NoError(t, err)
	require.Equal(t, appsv1.Visibility_VISIBILITY_PUBLIC, sv.GetVisibility())
	require.EqualValues(t, 1, sv.GetVersion())
	require.Len(t, sv.GetFiles(), 2)

	// Remix: a new private app of bob with the published files, and nothing else.
	remix, err := e.gateway.discover.RemixListing(as(t, bob), &appsv1.RemixListingRequest{ListingId: f.listing, Name: "Bob's take"})
	require.NoError(t, err)
	r := remix.GetApp()
	require.Equal(t, "Bob's take", r.GetName())
	require.Equal(t, appsv1.Visibility_VISIBILITY_PRIVATE, r.GetVisibility())
	require.Equal(t, appsv1.Role_ROLE_OWNER, r.GetRole())
	ps, err := e.gateway.prompts.ListPrompts(as(t, bob), &appsv1.ListPromptsRequest{AppId: r.GetAppId()})
	require.NoError(t, err)
	require.Empty(t, ps.GetPrompts(), "remix copies no prompt")
	refs, err := e.gateway.refs.ListReferences(as(t, bob), &appsv1.ListReferencesRequest{AppId: r.GetAppId()})
	require.NoError(t, err)
	require.Empty(t, refs.GetReferences(), "remix copies no reference")
	cols, err := e.gateway.sharing.ListCollaborators(as(t, bob), &appsv1.ListCollaboratorsRequest{AppId: r.GetAppId()})
	require.NoError(t, err)
	require.Empty(t, cols.GetCollaborators(), "remix copies no collaborator")
	links, err := e.gateway.sharing.ListShareLinks(as(t, bob), &appsv1.ListShareLinksRequest{AppId: r.GetAppId()})
	require.NoError(t, err)
	require.Empty(t, links.GetLinks())
	secrets, err := e.vaultSecrets(bob, r.GetAppId())
	require.NoError(t, err)
	require.Empty(t, secrets, "remix copies no secret")
	rf, err := e.gateway.versions.GetVersionFile(as(t, bob), &appsv1.GetVersionFileRequest{AppId: r.GetAppId(), Version: 1, Path: "index.html"})
	require.NoError(t, err)
	require.Equal(t, "<h1>Public thing</h1>", string(rf.GetFile().GetContent()))
	// The remix is bob's alone: alice (and anyone else) gets NotFound.
	_, err = e.gateway.apps.GetApp(as(t, alice), &appsv1.GetAppRequest{AppId: r.GetAppId()})
	requireCode(t, codes.NotFound, err)
	// Nothing of the remix reads alice's prompts: her audit has only her own reads.
	reads, err := e.gateway.prompts.ListPromptReads(as(t, alice), &appsv1.ListPromptReadsRequest{AppId: f.app})
	require.NoError(t, err)
	for _, rd := range reads.GetReads() {
		require.NotEqual(t, bob.id.String(), rd.GetReaderOwnerId())
	}

	// Unpublish: the listing and its objects are gone at once; the app falls back to the
	// live link's visibility.
	_, err = e.gateway.discover.UnpublishApp(as(t, alice), &appsv1.UnpublishAppRequest{AppId: f.app})
	require.NoError(t, err)
	_, err = e.gateway.discover.GetListing(anonymous(t), &appsv1.GetListingRequest{ListingId: f.listing})
	requireCode(t, codes.NotFound, err)
	all, err := e.gateway.discover.ListListings(anonymous(t), &appsv1.ListListingsRequest{PageSize: 100})
	require.NoError(t, err)
	for _, li := range all.GetListings() {
		require.NotEqual(t, f.listing, li.GetListingId())
	}
	_, err = e.gateway.discover.RemixListing(as(t, bob), &appsv1.RemixListingRequest{ListingId: f.listing})
	requireCode(t, codes.NotFound, err)
	for _, obj := range e.objects() {
		require.NotContains(t, obj, "/listings/"+f.listing, "the listing's objects are deleted")
	}
	require.Less(t, len(e.objects()), len(before)+2)
	got, err := e.gateway.apps.GetApp(as(t, alice), &appsv1.GetAppRequest{AppId: f.app})
	require.NoError(t, err)
	require.Equal(t, appsv1.Visibility_VISIBILITY_LINK, got.GetApp().GetVisibility())
	require.False(t, got.GetApp().GetPublished())
	require.Contains(t, e.outboxReasons(alice.id), "REASON_UNPUBLISHED")

	// Publishing sanitizes: a key in the description never reaches the public listing, and a
	// version holding a provider key is refused.
	desc := "Uses " + testOpenAIKey + "\x07 for chat"
	g, err := e.gateway.apps.CreateApp(as(t, alice), &appsv1.CreateAppRequest{Name: "Keyed", Description: desc})
	require.NoError(t, err)
	_, err = e.gateway.versions.CreateVersion(as(t, alice), &appsv1.CreateVersionRequest{AppId: g.GetApp().GetAppId(),
		Files: []*appsv1.File{{Path: "index.html", Content: []byte("<p>ok</p>")}}})
	require.NoError(t, err)
	pub, err := e.gateway.discover.PublishApp(as(t, alice), &appsv1.PublishAppRequest{AppId: g.GetApp().GetAppId()})
	require.NoError(t, err)
	require.Equal(t, "Uses [removed] for chat", pub.GetListing().GetDescription())
	_, err = e.gateway.versions.CreateVersion(as(t, alice), &appsv1.CreateVersionRequest{AppId: g.GetApp().GetAppId(),
		Files: []*appsv1.File{{Path: "app.js", Content: []byte("const key = '" + testOpenAIKey + "'")}}})
	require.NoError(t, err)
	_, err = e.gateway.discover.PublishApp(as(t, alice), &appsv1.PublishAppRequest{AppId: g.GetApp().GetAppId()})
	requireCode(t, codes.FailedPrecondition, err)
	require.Empty(t, e.grepStored(testOpenAIKey))
	_, err = e.gateway.discover.PublishApp(as(t, alice), &appsv1.PublishAppRequest{AppId: e.emptyApp(alice)})
	requireCode(t, codes.FailedPrecondition, err, "nothing to publish")
}

// victor2 is a second collaborator for fixtures that need two.
func victor2(e *env) person { return e.signUp("viewer2", tenantv1.Plan_PLAN_FREE) }

func (e *env) emptyApp(p person) string {
	e.t.Helper()
	a, err := e.gateway.apps.CreateApp(as(e.t, p), &appsv1.CreateAppRequest{Name: "empty"})
	require.NoError(e.t, err)
	return a.GetApp().GetAppId()
}

// A key in OpenAI's format, made for this test (never issued).
const testOpenAIKey = "sk-proj-u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzdocJ2isAj"

// An unknown-format high-entropy token, made for this test.
const testUnknownKey = "GBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ"

func testPastedKeys(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	eddie := e.signUp("eddie", tenantv1.Plan_PLAN_FREE)
	victor := e.signUp("victor", tenantv1.Plan_PLAN_FREE)
	f := e.makeApp(alice, "Chat")
	e.share(alice, &f, victor, eddie)

	text := "Call the chat API with " + testOpenAIKey + " and sign webhooks with " + testUnknownKey + "."
	resp, err := e.gateway.prompts.AddPrompt(as(t, eddie), &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_PROMPT, Text: text})
	require.NoError(t, err)
	names := resp.GetSecretsExtracted()
	require.Len(t, names, 2)
	require.True(t, strings.HasPrefix(names[0], "OPENAI_API_KEY_"), names[0])
	require.True(t, strings.HasPrefix(names[1], "SECRET_API_KEY_"), names[1])
	want := "Call the chat API with {{secret:" + names[0] + "}} and sign webhooks with {{secret:" + names[1] + "}}."
	require.Equal(t, want, resp.GetPrompt().GetText())
	require.Equal(t, "collaborator", resp.GetPrompt().GetAuthor())

	// The keys are secrets of the app in the vault, with their upstreams ...
	secrets, err := e.vaultSecrets(alice, f.app)
	require.NoError(t, err)
	upstreams := map[string]string{}
	for _, s := range secrets {
		upstreams[s.GetName()] = s.GetUpstreamHost()
	}
	require.Equal(t, "api.openai.com", upstreams[names[0]])
	require.Equal(t, keyscan.UnreachableUpstream, upstreams[names[1]])
	// ... and nowhere else: not in the prompt store (nor any table or object), not in the
	// answer, not in any log line of apps, the vault or the tenant service.
	for _, key := range []string{testOpenAIKey, testUnknownKey} {
		require.Empty(t, e.grepStored(key))
		require.NotContains(t, resp.String(), key)
		require.NotContains(t, e.logs.String(), key)
		require.NotContains(t, e.st.Logs(), key)
	}
	ps, err := e.gateway.prompts.ListPrompts(as(t, alice), &appsv1.ListPromptsRequest{AppId: f.app})
	require.NoError(t, err)
	require.Equal(t, want, ps.GetPrompts()[len(ps.GetPrompts())-1].GetText())
	require.NotContains(t, ps.String(), testOpenAIKey)
}

func (e *env) vaultSecrets(p person, appID string) ([]*vaultv1.Secret, error) {
	e.t.Helper()
	c := vaultv1.NewSecretServiceClient(e.st.Dial(e.t, workload.SecretsVault, workload.Gateway))
	resp, err := c.ListSecrets(as(e.t, p), &vaultv1.ListSecretsRequest{AppId: appID})
	return resp.GetSecrets(), err
}

func testUploads(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	f := e.makeApp(alice, "Uploads")
	ctx := as(t, alice)
	big := make([]byte, 4<<20+1)
	for i := range big {
		big[i] = 'a'
	}
	four := big[:4<<20]
	tests := []struct {
		name string
		do   func() error
	}{
		{"reference over the limit", func() error {
			_, err := e.gateway.refs.UploadReference(ctx, &appsv1.UploadReferenceRequest{AppId: f.app, Filename: "big.txt", ContentType: "text/plain", Content: big})
			return err
		}},
		{"reference of a refused type", func() error {
			_, err := e.gateway.refs.UploadReference(ctx, &appsv1.UploadReferenceRequest{AppId: f.app, Filename: "x.html", ContentType: "text/html", Content: []byte("<script>")})
			return err
		}},
		{"reference whose content is not its type", func() error {
			_, err := e.gateway.refs.UploadReference(ctx, &appsv1.UploadReferenceRequest{AppId: f.app, Filename: "x.png", ContentType: "image/png", Content: []byte("<svg onload=alert(1)>")})
			return err
		}},
		{"reference named with a folder", func() error {
			_, err := e.gateway.refs.UploadReference(ctx, &appsv1.UploadReferenceRequest{AppId: f.app, Filename: "../../x.txt", ContentType: "text/plain", Content: []byte("a")})
			return err
		}},
		{"version file over the limit", func() error {
			_, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{
				{Path: "index.html", Content: []byte("ok")}, {Path: "big.js", Content: big}}})
			return err
		}},
		{"version over the total limit", func() error {
			_, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{
				{Path: "a.js", Content: four}, {Path: "b.js", Content: four}, {Path: "c.js", Content: four}, {Path: "d.js", Content: []byte("x")}}})
			return err
		}},
		{"version with one refused file among good ones", func() error {
			_, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{
				{Path: "index.html", Content: []byte("ok")}, {Path: "run.sh", Content: []byte("rm -rf /")}}})
			return err
		}},
		{"version with a path escaping the app", func() error {
			_, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{
				{Path: "a/../../b.html", Content: []byte("ok")}}})
			return err
		}},
		{"version with a path twice", func() error {
			_, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{
				{Path: "a.html", Content: []byte("ok")}, {Path: "a.html", Content: []byte("ok")}}})
			return err
		}},
		{"version with a fake image", func() error {
			_, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{
				{Path: "logo.png", Content: []byte("<html>")}}})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, objects := e.rowCounts(), e.objects()
			requireCode(t, codes.InvalidArgument, tt.do())
			require.Equal(t, rows, e.rowCounts(), "no row")
			require.Equal(t, objects, e.objects(), "no object")
		})
	}
	// At the limit: accepted (12 MiB in three files).
	v, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{
		{Path: "a.js", Content: four}, {Path: "b.js", Content: four}, {Path: "c.js", Content: four}}})
	require.NoError(t, err)
	require.EqualValues(t, 2, v.GetVersion().GetVersion())
	got, err := e.gateway.versions.GetVersionFile(ctx, &appsv1.GetVersionFileRequest{AppId: f.app, Version: 2, Path: "b.js"})
	require.NoError(t, err)
	require.Equal(t, four, got.GetFile().GetContent())
	ref, err := e.gateway.refs.GetReference(ctx, &appsv1.GetReferenceRequest{AppId: f.app, ReferenceId: f.reference})
	require.NoError(t, err)
	require.Equal(t, pngBytes, ref.GetContent())
	require.Equal(t, "sketch.png", ref.GetReference().GetFilename())
}

func testPagination(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	ctx := as(t, alice)
	var created []string
	for i := range 7 {
		a, err := e.gateway.apps.CreateApp(ctx, &appsv1.CreateAppRequest{Name: fmt.Sprintf("app %d", i)})
		require.NoError(t, err)
		created = append(created, a.GetApp().GetAppId())
	}
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		resp, err := e.gateway.apps.ListApps(ctx, &appsv1.ListAppsRequest{PageSize: 3, PageToken: token})
		require.NoError(t, err)
		for _, a := range resp.GetApps() {
			require.False(t, seen[a.GetAppId()], "an app appears once")
			seen[a.GetAppId()] = true
		}
		// Apps created between pages never shift the pages that follow.
		_, err = e.gateway.apps.CreateApp(ctx, &appsv1.CreateAppRequest{Name: "late"})
		require.NoError(t, err)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
		require.Less(t, page, 5)
	}
	for _, id := range created {
		require.True(t, seen[id], "every app of the first listing is on a page")
	}
	// A token of another listing is refused; a stranger's token shows nothing of the owner.
	resp, err := e.gateway.apps.ListApps(ctx, &appsv1.ListAppsRequest{PageSize: 1})
	require.NoError(t, err)
	_, err = e.gateway.apps.ListApps(ctx, &appsv1.ListAppsRequest{Shared: true, PageToken: resp.GetNextPageToken()})
	requireCode(t, codes.InvalidArgument, err)
	_, err = e.gateway.apps.ListApps(ctx, &appsv1.ListAppsRequest{PageToken: "garbage"})
	requireCode(t, codes.InvalidArgument, err)
	mallory := e.signUp("mallory", tenantv1.Plan_PLAN_FREE)
	other, err := e.gateway.apps.ListApps(as(t, mallory), &appsv1.ListAppsRequest{PageToken: resp.GetNextPageToken()})
	require.NoError(t, err)
	require.Empty(t, other.GetApps())

	// Prompts page in conversation order.
	f := e.makeApp(alice, "Talk")
	for i := range 4 {
		_, err := e.gateway.prompts.AddPrompt(ctx, &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_PROMPT, Text: fmt.Sprintf("p%d", i)})
		require.NoError(t, err)
	}
	var texts []string
	token = ""
	for {
		resp, err := e.gateway.prompts.ListPrompts(ctx, &appsv1.ListPromptsRequest{AppId: f.app, PageSize: 2, PageToken: token})
		require.NoError(t, err)
		for _, p := range resp.GetPrompts() {
			texts = append(texts, p.GetText())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	require.Equal(t, []string{"Build a weather dashboard for Talk", "p0", "p1", "p2", "p3"}, texts)
}

func testBuilderAndAudit(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	victor := e.signUp("victor", tenantv1.Plan_PLAN_FREE)
	mallory := e.signUp("mallory", tenantv1.Plan_PLAN_FREE)
	f := e.makeApp(alice, "Built")
	e.share(alice, &f, victor, victor2(e))

	b := as(t, alice)
	ps, err := e.builder.prompts.ListPrompts(b, &appsv1.ListPromptsRequest{AppId: f.app})
	require.NoError(t, err)
	require.Len(t, ps.GetPrompts(), 1)
	resp, err := e.builder.prompts.AddPrompt(b, &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_RESPONSE, Text: "Done: a dashboard."})
	require.NoError(t, err)
	require.Equal(t, "builder", resp.GetPrompt().GetAuthor())
	_, err = e.builder.prompts.AddPrompt(b, &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_PROMPT, Text: "pretend"})
	requireCode(t, codes.InvalidArgument, err, "the builder writes responses only")
	_, err = e.gateway.prompts.AddPrompt(b, &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_RESPONSE, Text: "pretend"})
	requireCode(t, codes.InvalidArgument, err, "people write prompts only")
	v, err := e.builder.versions.CreateVersion(b, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{{Path: "index.html", Content: []byte("<p>2</p>")}}})
	require.NoError(t, err)
	require.Equal(t, "builder", v.GetVersion().GetAuthor())
	ref, err := e.builder.refs.GetReference(b, &appsv1.GetReferenceRequest{AppId: f.app, ReferenceId: f.reference})
	require.NoError(t, err)
	require.Equal(t, pngBytes, ref.GetContent())
	// The builder acts for the owner it asserts and only on that owner's apps.
	_, err = e.builder.prompts.ListPrompts(as(t, mallory), &appsv1.ListPromptsRequest{AppId: f.app})
	requireCode(t, codes.NotFound, err)
	_, err = e.builder.prompts.ListPrompts(as(t, victor), &appsv1.ListPromptsRequest{AppId: f.app})
	requireCode(t, codes.NotFound, err, "not even through a collaborator")
	// ... and never on what its table entry does not list.
	_, err = e.builder.apps.DeleteApp(b, &appsv1.DeleteAppRequest{AppId: f.app})
	requireCode(t, codes.PermissionDenied, err)
	_, err = e.builder.sharing.CreateShareLink(b, &appsv1.CreateShareLinkRequest{AppId: f.app})
	requireCode(t, codes.PermissionDenied, err)

	// A collaborator's read and an export are audited too.
	_, err = e.gateway.prompts.ListPrompts(as(t, victor), &appsv1.ListPromptsRequest{AppId: f.app})
	require.NoError(t, err)
	_, err = e.gateway.prompts.ListPrompts(as(t, alice), &appsv1.ListPromptsRequest{AppId: f.app})
	require.NoError(t, err)
	stream, err := e.lifecycle.internal.ExportOwner(ctxT(t), &appsv1.ExportOwnerRequest{OwnerId: alice.id.String()})
	require.NoError(t, err)
	var prompts, refs, appsN int
	files := map[string]string{}
	for {
		item, err := stream.Recv()
		if err != nil {
			require.ErrorContains(t, err, "EOF")
			break
		}
		switch {
		case item.GetApp() != nil:
			appsN++
		case item.GetPrompt() != nil:
			prompts++
		case item.GetReference() != nil:
			refs++
			require.Equal(t, pngBytes, item.GetReference().GetContent())
		case item.GetFile() != nil:
			f := item.GetFile()
			files[fmt.Sprintf("v%d/%s", f.GetVersion(), f.GetFile().GetPath())] = string(f.GetFile().GetContent())
		}
	}
	require.Equal(t, 1, appsN)
	require.Equal(t, 2, prompts)
	require.Equal(t, 1, refs)
	// Every version's files, opened (envelope-sealed objects read by their stored keys).
	require.Equal(t, map[string]string{
		"v1/index.html":    "<h1>Built</h1>",
		"v1/assets/app.js": "console.log('hi')",
		"v2/index.html":    "<p>2</p>",
	}, files, "two files of version 1, one of version 2, with their contents")

	reads, err := e.gateway.prompts.ListPromptReads(as(t, alice), &appsv1.ListPromptReadsRequest{AppId: f.app})
	require.NoError(t, err)
	purposes := map[appsv1.PromptReadPurpose]string{}
	for _, r := range reads.GetReads() {
		purposes[r.GetPurpose()] = r.GetReaderOwnerId()
	}
	require.Equal(t, alice.id.String(), purposes[appsv1.PromptReadPurpose_PROMPT_READ_PURPOSE_OWNER_VIEW])
	require.Equal(t, victor.id.String(), purposes[appsv1.PromptReadPurpose_PROMPT_READ_PURPOSE_COLLABORATOR_VIEW])
	require.Contains(t, purposes, appsv1.PromptReadPurpose_PROMPT_READ_PURPOSE_BUILD)
	require.Contains(t, purposes, appsv1.PromptReadPurpose_PROMPT_READ_PURPOSE_EXPORT)
	// Newest first: the export is the last read.
	require.Equal(t, appsv1.PromptReadPurpose_PROMPT_READ_PURPOSE_EXPORT, reads.GetReads()[0].GetPurpose())
}

func testSystemCallers(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	f := e.makeApp(alice, "Sys")
	// System methods refuse every other workload, and refuse an asserted owner.
	_, err := e.gateway.internal.GetServableApp(as(t, alice), &appsv1.GetServableAppRequest{AppId: f.app})
	requireCode(t, codes.PermissionDenied, err)
	_, err = e.gateway.internal.GetServableApp(ctxT(t), &appsv1.GetServableAppRequest{AppId: f.app})
	requireCode(t, codes.PermissionDenied, err)
	_, err = e.sandbox.internal.GetServableApp(as(t, alice), &appsv1.GetServableAppRequest{AppId: f.app})
	requireCode(t, codes.PermissionDenied, err)
	_, err = e.sandbox.internal.PurgeOwner(ctxT(t), &appsv1.PurgeOwnerRequest{OwnerId: alice.id.String()})
	requireCode(t, codes.PermissionDenied, err)
	_, err = e.lifecycle.internal.CheckViewer(ctxT(t), &appsv1.CheckViewerRequest{AppId: f.app, ViewerOwnerId: alice.id.String()})
	requireCode(t, codes.PermissionDenied, err)
	_, err = e.tenantWL.apps.GetApp(as(t, alice), &appsv1.GetAppRequest{AppId: f.app})
	requireCode(t, codes.PermissionDenied, err, "an unlisted workload")
	// Reserved metadata put on the call by hand never travels: the client interceptor sends
	// only the verified owner context, so the call has no owner.
	md := metadata.Pairs(owner.MDOwnerID, alice.id.String(), owner.MDOwnerRegion, "us-east")
	_, err = e.gateway.apps.GetApp(metadata.NewOutgoingContext(ctxT(t), md), &appsv1.GetAppRequest{AppId: f.app})
	requireCode(t, codes.Unauthenticated, err)

	sv, err := e.sandbox.internal.GetServableApp(ctxT(t), &appsv1.GetServableAppRequest{AppId: f.app})
	require.NoError(t, err)
	require.Equal(t, alice.id.String(), sv.GetOwnerId())
	require.Equal(t, appsv1.Visibility_VISIBILITY_PRIVATE, sv.GetVisibility())
	files := map[string]string{}
	for _, fl := range sv.GetFiles() {
		files[fl.GetPath()] = string(fl.GetContent())
	}
	require.Equal(t, map[string]string{"index.html": "<h1>Sys</h1>", "assets/app.js": "console.log('hi')"}, files)
	_, err = e.sandbox.internal.GetServableApp(ctxT(t), &appsv1.GetServableAppRequest{AppId: uuid.NewString()})
	requireCode(t, codes.NotFound, err)
	role, err := e.sandbox.internal.CheckViewer(ctxT(t), &appsv1.CheckViewerRequest{AppId: f.app, ViewerOwnerId: alice.id.String()})
	require.NoError(t, err)
	require.Equal(t, appsv1.Role_ROLE_OWNER, role.GetRole())
	stranger := e.signUp("stranger", tenantv1.Plan_PLAN_FREE)
	_, errForeign := e.sandbox.internal.CheckViewer(ctxT(t), &appsv1.CheckViewerRequest{AppId: f.app, ViewerOwnerId: stranger.id.String()})
	_, errMissing := e.sandbox.internal.CheckViewer(ctxT(t), &appsv1.CheckViewerRequest{AppId: uuid.NewString(), ViewerOwnerId: stranger.id.String()})
	requireCode(t, codes.NotFound, errForeign)
	require.Equal(t, status.Convert(errMissing).Proto().String(), status.Convert(errForeign).Proto().String())
}

func testBadInput(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	f := e.makeApp(alice, "Bad")
	ctx := as(t, alice)
	long := strings.Repeat("x", 121)
	tests := []struct {
		name string
		do   func() error
	}{
		{"empty name", func() error { _, err := e.gateway.apps.CreateApp(ctx, &appsv1.CreateAppRequest{}); return err }},
		{"name too long", func() error {
			_, err := e.gateway.apps.CreateApp(ctx, &appsv1.CreateAppRequest{Name: long})
			return err
		}},
		{"app id not a uuid", func() error {
			_, err := e.gateway.apps.GetApp(ctx, &appsv1.GetAppRequest{AppId: "1 OR 1=1"})
			return err
		}},
		{"page size over 100", func() error {
			_, err := e.gateway.apps.ListApps(ctx, &appsv1.ListAppsRequest{PageSize: 101})
			return err
		}},
		{"prompt too long", func() error {
			_, err := e.gateway.prompts.AddPrompt(ctx, &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_PROMPT, Text: strings.Repeat("a", 32769)})
			return err
		}},
		{"prompt without kind", func() error {
			_, err := e.gateway.prompts.AddPrompt(ctx, &appsv1.AddPromptRequest{AppId: f.app, Text: "a"})
			return err
		}},
		{"empty prompt", func() error {
			_, err := e.gateway.prompts.AddPrompt(ctx, &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_PROMPT})
			return err
		}},
		{"share link ttl over 90 days", func() error {
			_, err := e.gateway.sharing.CreateShareLink(ctx, &appsv1.CreateShareLinkRequest{AppId: f.app, TtlSeconds: 91 * 24 * 3600})
			return err
		}},
		{"collaborator email malformed", func() error {
			_, err := e.gateway.sharing.AddCollaborator(ctx, &appsv1.AddCollaboratorRequest{AppId: f.app, Email: "not an email", Role: appsv1.Role_ROLE_VIEWER})
			return err
		}},
		{"collaborator as owner", func() error {
			_, err := e.gateway.sharing.AddCollaborator(ctx, &appsv1.AddCollaboratorRequest{AppId: f.app, Email: "a@example.com", Role: appsv1.Role_ROLE_OWNER})
			return err
		}},
		{"version without files", func() error {
			_, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app})
			return err
		}},
		{"version file path absolute", func() error {
			_, err := e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{{Path: "/etc/passwd.txt"}}})
			return err
		}},
		{"version number zero", func() error {
			_, err := e.gateway.versions.GetVersionFile(ctx, &appsv1.GetVersionFileRequest{AppId: f.app, Path: "index.html"})
			return err
		}},
		{"purge batch over the bound", func() error {
			_, err := e.lifecycle.internal.PurgeOwner(ctxT(t), &appsv1.PurgeOwnerRequest{OwnerId: alice.id.String(), BatchSize: 10001})
			return err
		}},
		{"system owner id malformed", func() error {
			_, err := e.lifecycle.internal.DisableOwner(ctxT(t), &appsv1.DisableOwnerRequest{OwnerId: "alice"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.rowCounts()
			requireCode(t, codes.InvalidArgument, tt.do())
			require.Equal(t, before, e.rowCounts())
		})
	}
}

func testDisableRestorePurge(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	victor := e.signUp("victor", tenantv1.Plan_PLAN_FREE)
	bob := e.signUp("bob", tenantv1.Plan_PLAN_FREE)
	f := e.makeApp(alice, "Lifecycle")
	e.share(alice, &f, victor, victor2(e))
	g := e.makeApp(alice, "Second")
	bobs := e.makeApp(bob, "Bob's")

	_, err := e.lifecycle.internal.PurgeOwner(ctxT(t), &appsv1.PurgeOwnerRequest{OwnerId: alice.id.String()})
	requireCode(t, codes.FailedPrecondition, err, "only a disabled owner is purged")

	d, err := e.lifecycle.internal.DisableOwner(ctxT(t), &appsv1.DisableOwnerRequest{OwnerId: alice.id.String()})
	require.NoError(t, err)
	require.EqualValues(t, 1, d.GetListingsRemoved())
	require.EqualValues(t, 1, d.GetLinksRevoked())
	require.Contains(t, e.outboxReasons(alice.id), "REASON_OWNER_DISABLED")
	for _, obj := range e.objects() {
		require.NotContains(t, obj, alice.id.String()+"/listings/", "the public copies are gone at once")
	}
	_, err = e.gateway.apps.GetApp(as(t, victor), &appsv1.GetAppRequest{AppId: f.app})
	requireCode(t, codes.NotFound, err)
	_, err = e.gateway.apps.GetApp(as(t, alice), &appsv1.GetAppRequest{AppId: f.app})
	requireCode(t, codes.FailedPrecondition, err)
	d, err = e.lifecycle.internal.DisableOwner(ctxT(t), &appsv1.DisableOwnerRequest{OwnerId: alice.id.String()})
	require.NoError(t, err, "idempotent")
	require.Zero(t, d.GetListingsRemoved())

	// Cancelled: collaborators are back; listings and links stay removed.
	_, err = e.lifecycle.internal.RestoreOwner(ctxT(t), &appsv1.RestoreOwnerRequest{OwnerId: alice.id.String()})
	require.NoError(t, err)
	_, err = e.gateway.apps.GetApp(as(t, victor), &appsv1.GetAppRequest{AppId: f.app})
	require.NoError(t, err)
	_, err = e.gateway.discover.GetListing(anonymous(t), &appsv1.GetListingRequest{ListingId: f.listing})
	requireCode(t, codes.NotFound, err)
	_, err = e.sandbox.internal.CheckShareToken(ctxT(t), &appsv1.CheckShareTokenRequest{AppId: f.app, Token: f.token})
	requireCode(t, codes.NotFound, err)
	got, err := e.gateway.apps.GetApp(as(t, alice), &appsv1.GetAppRequest{AppId: f.app})
	require.NoError(t, err)
	require.Equal(t, appsv1.Visibility_VISIBILITY_PRIVATE, got.GetApp().GetVisibility())

	// Purge in small batches until done: every row and object of alice, and nothing of bob.
	_, err = e.lifecycle.internal.DisableOwner(ctxT(t), &appsv1.DisableOwnerRequest{OwnerId: alice.id.String()})
	require.NoError(t, err)
	var rows, objects int64
	for i := 0; ; i++ {
		require.Less(t, i, 100)
		p, err := e.lifecycle.internal.PurgeOwner(ctxT(t), &appsv1.PurgeOwnerRequest{OwnerId: alice.id.String(), BatchSize: 3})
		require.NoError(t, err)
		require.LessOrEqual(t, p.GetRowsDeleted()+p.GetObjectsDeleted(), int64(3)+1, "bounded batches")
		rows, objects = rows+p.GetRowsDeleted(), objects+p.GetObjectsDeleted()
		if p.GetDone() {
			break
		}
	}
	require.Positive(t, rows)
	require.Positive(t, objects)
	require.Empty(t, e.ownerRows(alice.id))
	for _, obj := range e.objects() {
		require.False(t, strings.HasPrefix(obj, alice.id.String()), obj)
	}
	p, err := e.lifecycle.internal.PurgeOwner(ctxT(t), &appsv1.PurgeOwnerRequest{OwnerId: alice.id.String()})
	require.NoError(t, err)
	require.True(t, p.GetDone(), "done once nothing is left")
	require.Zero(t, p.GetRowsDeleted())
	_, err = e.gateway.apps.GetApp(as(t, bob), &appsv1.GetAppRequest{AppId: bobs.app})
	require.NoError(t, err)
	_, err = e.gateway.versions.GetVersionFile(as(t, bob), &appsv1.GetVersionFileRequest{AppId: bobs.app, Version: 1, Path: "index.html"})
	require.NoError(t, err)
	_ = g
}

// ownerRows lists the tables that still hold rows of o (the outbox aside: the relay empties it).
func (e *env) ownerRows(o owner.ID) []string {
	e.t.Helper()
	var out []string
	for table := range e.rowCounts() {
		var n int
		require.NoError(e.t, e.pg.Migrator.QueryRow(ctxT(e.t), `select count(*) from `+table+` where owner_id = $1`, o).Scan(&n))
		if n > 0 {
			out = append(out, table)
		}
	}
	var n int
	require.NoError(e.t, e.pg.Migrator.QueryRow(ctxT(e.t), `select count(*) from inbox where owner_id = $1`, o).Scan(&n))
	if n > 0 {
		out = append(out, "inbox")
	}
	return out
}

// outboxReasons lists the events waiting in the outbox for o (no relay runs in this
// environment, so every event written stays there): subjects and access-change reasons.
func (e *env) outboxReasons(o owner.ID) string {
	e.t.Helper()
	rows, err := e.pg.Migrator.Query(ctxT(e.t), `select subject, payload from outbox where owner_id = $1`, o)
	require.NoError(e.t, err)
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var (
			subject string
			payload []byte
		)
		require.NoError(e.t, rows.Scan(&subject, &payload))
		b.WriteString(subject + " ")
		if subject == "apps.app.access_changed" {
			b.WriteString(accessReason(e.t, payload) + " ")
		}
	}
	require.NoError(e.t, rows.Err())
	return b.String()
}
