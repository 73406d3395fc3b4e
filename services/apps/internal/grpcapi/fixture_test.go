package grpcapi_test

import (
	"github.com/stretchr/testify/require"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
)

var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")

// fixture is an app of its owner with one of everything in it.
type fixture struct {
	app       string
	prompt    string
	reference string
	link      string
	token     string
	viewer    string // collaborator IDs
	editor    string
	listing   string
}

// makeApp creates an app with a prompt, a reference and a first version.
func (e *env) makeApp(p person, name string) fixture {
	e.t.Helper()
	ctx := as(e.t, p)
	a, err := e.gateway.apps.CreateApp(ctx, &appsv1.CreateAppRequest{Name: name, Description: "made by " + p.name})
	require.NoError(e.t, err)
	f := fixture{app: a.GetApp().GetAppId()}
	pr, err := e.gateway.prompts.AddPrompt(ctx, &appsv1.AddPromptRequest{AppId: f.app, Kind: appsv1.Prompt_KIND_PROMPT,
		Text: "Build a weather dashboard for " + name})
	require.NoError(e.t, err)
	f.prompt = pr.GetPrompt().GetPromptId()
	ref, err := e.gateway.refs.UploadReference(ctx, &appsv1.UploadReferenceRequest{AppId: f.app, Filename: "sketch.png",
		ContentType: "image/png", Content: pngBytes})
	require.NoError(e.t, err)
	f.reference = ref.GetReference().GetReferenceId()
	_, err = e.gateway.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: f.app, Files: []*appsv1.File{
		{Path: "index.html", Content: []byte("<h1>" + name + "</h1>")},
		{Path: "assets/app.js", Content: []byte("console.log('hi')")},
	}})
	require.NoError(e.t, err)
	return f
}

// share adds a share link, the two collaborators and a Discover listing to f.
func (e *env) share(p person, f *fixture, viewer, editor person) {
	e.t.Helper()
	ctx := as(e.t, p)
	l, err := e.gateway.sharing.CreateShareLink(ctx, &appsv1.CreateShareLinkRequest{AppId: f.app})
	require.NoError(e.t, err)
	f.link, f.token = l.GetLink().GetLinkId(), l.GetToken()
	for _, c := range []struct {
		who  person
		role appsv1.Role
		dst  *string
	}{{viewer, appsv1.Role_ROLE_VIEWER, &f.viewer}, {editor, appsv1.Role_ROLE_EDITOR, &f.editor}} {
		resp, err := e.gateway.sharing.AddCollaborator(ctx, &appsv1.AddCollaboratorRequest{AppId: f.app, Email: c.who.email, Role: c.role})
		require.NoError(e.t, err)
		*c.dst = resp.GetCollaborator().GetCollaboratorId()
	}
	pub, err := e.gateway.discover.PublishApp(ctx, &appsv1.PublishAppRequest{AppId: f.app})
	require.NoError(e.t, err)
	f.listing = pub.GetListing().GetListingId()
}
