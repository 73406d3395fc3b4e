package grpcapi_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
)

// level is what a call needs of the caller.
type level int

const (
	levelRead    level = iota // owner, viewer, editor
	levelWrite                // owner, editor
	levelOwner                // owner only
	levelTenant               // any signed-in tenant (no app in the request)
	levelAnyone               // Discover reads, anonymous too
	levelListing              // a signed-in tenant acting on a listing (remix)
)

// ids are the identifiers a call puts in its request.
type ids struct {
	app, ref, link, collab, listing string
}

type call struct {
	name string
	lvl  level
	// destructive calls get a fresh fixture for the cells where they succeed.
	destructive bool
	do          func(ctx context.Context, c clients, id ids) error
}

func calls() []call {
	html := []*appsv1.File{{Path: "index.html", Content: []byte("<p>v</p>")}}
	return []call{
		{name: "CreateApp", lvl: levelTenant, do: func(ctx context.Context, c clients, _ ids) error {
			_, err := c.apps.CreateApp(ctx, &appsv1.CreateAppRequest{Name: "n"})
			return err
		}},
		{name: "ListApps", lvl: levelTenant, do: func(ctx context.Context, c clients, _ ids) error {
			_, err := c.apps.ListApps(ctx, &appsv1.ListAppsRequest{})
			return err
		}},
		{name: "ListApps shared", lvl: levelTenant, do: func(ctx context.Context, c clients, _ ids) error {
			_, err := c.apps.ListApps(ctx, &appsv1.ListAppsRequest{Shared: true})
			return err
		}},
		{name: "GetApp", lvl: levelRead, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.apps.GetApp(ctx, &appsv1.GetAppRequest{AppId: id.app})
			return err
		}},
		{name: "UpdateApp", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			name := "renamed"
			_, err := c.apps.UpdateApp(ctx, &appsv1.UpdateAppRequest{AppId: id.app, Name: &name})
			return err
		}},
		{name: "DeleteApp", lvl: levelOwner, destructive: true, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.apps.DeleteApp(ctx, &appsv1.DeleteAppRequest{AppId: id.app})
			return err
		}},
		{name: "AddPrompt", lvl: levelWrite, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.prompts.AddPrompt(ctx, &appsv1.AddPromptRequest{AppId: id.app, Kind: appsv1.Prompt_KIND_PROMPT, Text: "more"})
			return err
		}},
		{name: "ListPrompts", lvl: levelRead, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.prompts.ListPrompts(ctx, &appsv1.ListPromptsRequest{AppId: id.app})
			return err
		}},
		{name: "ListPromptReads", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.prompts.ListPromptReads(ctx, &appsv1.ListPromptReadsRequest{AppId: id.app})
			return err
		}},
		{name: "UploadReference", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.refs.UploadReference(ctx, &appsv1.UploadReferenceRequest{AppId: id.app, Filename: "a.txt",
				ContentType: "text/plain", Content: []byte("notes")})
			return err
		}},
		{name: "ListReferences", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.refs.ListReferences(ctx, &appsv1.ListReferencesRequest{AppId: id.app})
			return err
		}},
		{name: "GetReference", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.refs.GetReference(ctx, &appsv1.GetReferenceRequest{AppId: id.app, ReferenceId: id.ref})
			return err
		}},
		{name: "DeleteReference", lvl: levelOwner, destructive: true, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.refs.DeleteReference(ctx, &appsv1.DeleteReferenceRequest{AppId: id.app, ReferenceId: id.ref})
			return err
		}},
		{name: "CreateVersion", lvl: levelWrite, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: id.app, Files: html})
			return err
		}},
		{name: "ListVersions", lvl: levelRead, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.versions.ListVersions(ctx, &appsv1.ListVersionsRequest{AppId: id.app})
			return err
		}},
		{name: "GetVersionFile", lvl: levelRead, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.versions.GetVersionFile(ctx, &appsv1.GetVersionFileRequest{AppId: id.app, Version: 1, Path: "index.html"})
			return err
		}},
		{name: "CreateShareLink", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.sharing.CreateShareLink(ctx, &appsv1.CreateShareLinkRequest{AppId: id.app})
			return err
		}},
		{name: "ListShareLinks", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.sharing.ListShareLinks(ctx, &appsv1.ListShareLinksRequest{AppId: id.app})
			return err
		}},
		{name: "RevokeShareLink", lvl: levelOwner, destructive: true, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.sharing.RevokeShareLink(ctx, &appsv1.RevokeShareLinkRequest{AppId: id.app, LinkId: id.link})
			return err
		}},
		{name: "AddCollaborator", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			// An unknown email: past the owner check, the tenant service answers NotFound;
			// before it, the caller's own rights decide.
			_, err := c.sharing.AddCollaborator(ctx, &appsv1.AddCollaboratorRequest{AppId: id.app,
				Email: "nobody-" + uuid.NewString()[:8] + "@example.com", Role: appsv1.Role_ROLE_VIEWER})
			if status.Code(err) == codes.NotFound && err.Error() != "" && status.Convert(err).Message() == "no account that can be invited has this email" {
				return nil
			}
			return err
		}},
		{name: "ListCollaborators", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.sharing.ListCollaborators(ctx, &appsv1.ListCollaboratorsRequest{AppId: id.app})
			return err
		}},
		{name: "RemoveCollaborator", lvl: levelOwner, destructive: true, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.sharing.RemoveCollaborator(ctx, &appsv1.RemoveCollaboratorRequest{AppId: id.app, CollaboratorId: id.collab})
			return err
		}},
		{name: "PublishApp", lvl: levelOwner, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.discover.PublishApp(ctx, &appsv1.PublishAppRequest{AppId: id.app})
			return err
		}},
		{name: "UnpublishApp", lvl: levelOwner, destructive: true, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.discover.UnpublishApp(ctx, &appsv1.UnpublishAppRequest{AppId: id.app})
			return err
		}},
		{name: "ListListings", lvl: levelAnyone, do: func(ctx context.Context, c clients, _ ids) error {
			_, err := c.discover.ListListings(ctx, &appsv1.ListListingsRequest{})
			return err
		}},
		{name: "GetListing", lvl: levelAnyone, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.discover.GetListing(ctx, &appsv1.GetListingRequest{ListingId: id.listing})
			return err
		}},
		{name: "GetListingFile", lvl: levelAnyone, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.discover.GetListingFile(ctx, &appsv1.GetListingFileRequest{ListingId: id.listing, Path: "index.html"})
			return err
		}},
		{name: "RemixListing", lvl: levelListing, do: func(ctx context.Context, c clients, id ids) error {
			_, err := c.discover.RemixListing(ctx, &appsv1.RemixListingRequest{ListingId: id.listing})
			return err
		}},
	}
}

// actor is one column of the matrix.
type actor int

const (
	actorOwner actor = iota
	actorStranger
	actorViewer
	actorEditor
	actorLinkHolder
	actorAnonymous
	actorDeletionPending
)

var actorNames = map[actor]string{
	actorOwner: "owner", actorStranger: "stranger", actorViewer: "viewer", actorEditor: "editor",
	actorLinkHolder: "share-link holder", actorAnonymous: "anonymous", actorDeletionPending: "deletion_pending",
}

// expect is what the rules allow: the matrix's answer key.
func expect(a actor, l level) codes.Code {
	switch {
	case a == actorAnonymous && l == levelAnyone:
		return codes.OK
	case a == actorAnonymous:
		return codes.Unauthenticated
	case l == levelAnyone:
		return codes.OK
	case a == actorDeletionPending:
		return codes.FailedPrecondition
	case l == levelTenant || l == levelListing:
		return codes.OK
	case a == actorOwner:
		return codes.OK
	case a == actorStranger || a == actorLinkHolder:
		return codes.NotFound
	case a == actorEditor && (l == levelRead || l == levelWrite):
		return codes.OK
	case a == actorViewer && l == levelRead:
		return codes.OK
	}
	return codes.PermissionDenied
}

func testMatrix(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	mallory := e.signUp("mallory", tenantv1.Plan_PLAN_FREE)
	victor := e.signUp("victor", tenantv1.Plan_PLAN_FREE)
	eddie := e.signUp("eddie", tenantv1.Plan_PLAN_FREE)
	lucy := e.signUp("lucy", tenantv1.Plan_PLAN_FREE)
	dora := e.signUp("dora", tenantv1.Plan_PLAN_STUDIO)

	fix := func() fixture {
		f := e.makeApp(alice, "Shared")
		e.share(alice, &f, victor, eddie)
		return f
	}
	shared := fix()
	idsOf := func(f fixture) ids {
		return ids{app: f.app, ref: f.reference, link: f.link, collab: f.viewer, listing: f.listing}
	}

	// dora's own app was shared and published before her deletion was requested; DisableOwner
	// then ran, as data-lifecycle does at the request.
	doraApp := e.makeApp(dora, "Dora's")
	e.share(dora, &doraApp, victor, eddie)
	_, err := e.tenantAsLifecycle.DisableTenant(ctxT(t), &tenantv1.DisableTenantRequest{OwnerId: dora.id.String()})
	require.NoError(t, err)
	_, err = e.lifecycle.internal.DisableOwner(ctxT(t), &appsv1.DisableOwnerRequest{OwnerId: dora.id.String()})
	require.NoError(t, err)

	ctxOf := map[actor]func() context.Context{
		actorOwner:           func() context.Context { return as(t, alice) },
		actorStranger:        func() context.Context { return as(t, mallory) },
		actorViewer:          func() context.Context { return as(t, victor) },
		actorEditor:          func() context.Context { return as(t, eddie) },
		actorLinkHolder:      func() context.Context { return as(t, lucy) },
		actorAnonymous:       func() context.Context { return anonymous(t) },
		actorDeletionPending: func() context.Context { return as(t, dora) },
	}
	// The share-link holder knows the token and the app; no apps RPC takes the token, and
	// the app answers as to any stranger. The token itself opens the app through the sandbox.
	_, err = e.sandbox.internal.CheckShareToken(ctxT(t), &appsv1.CheckShareTokenRequest{AppId: shared.app, Token: shared.token})
	require.NoError(t, err)

	for _, c := range calls() {
		for a := actorOwner; a <= actorDeletionPending; a++ {
			t.Run(c.name+"/"+actorNames[a], func(t *testing.T) {
				want := expect(a, c.lvl)
				target := shared
				if c.destructive && want == codes.OK {
					target = fix()
				}
				before := e.rowCounts()
				err := c.do(ctxOf[a](), e.gateway, idsOf(target))
				require.Equal(t, want.String(), status.Code(err).String(), "%s as %s: %v", c.name, actorNames[a], err)
				if want != codes.OK {
					require.Equal(t, before, e.rowCounts(), "a refused call changes nothing")
				}
			})
		}
	}

	// Strangers get exactly the answer of a missing ID, in every position an ID can take.
	mine := e.makeApp(mallory, "Mine")
	missing := ids{app: uuid.NewString(), ref: uuid.NewString(), link: uuid.NewString(), collab: uuid.NewString(), listing: uuid.NewString()}
	for _, c := range calls() {
		if c.lvl == levelTenant || c.lvl == levelAnyone || c.lvl == levelListing {
			continue
		}
		t.Run("ids/"+c.name, func(t *testing.T) {
			positions := []struct {
				name            string
				foreign, absent ids
			}{
				{"app id in the path", ids{app: shared.app, ref: shared.reference, link: shared.link, collab: shared.viewer},
					ids{app: missing.app, ref: missing.ref, link: missing.link, collab: missing.collab}},
				{"own app, foreign child id", ids{app: mine.app, ref: shared.reference, link: shared.link, collab: shared.viewer},
					ids{app: mine.app, ref: missing.ref, link: missing.link, collab: missing.collab}},
			}
			for _, p := range positions {
				if p.name == "own app, foreign child id" && c.name != "GetReference" && c.name != "DeleteReference" &&
					c.name != "RevokeShareLink" && c.name != "RemoveCollaborator" {
					continue
				}
				before := e.rowCounts()
				errForeign := c.do(as(t, mallory), e.gateway, p.foreign)
				errAbsent := c.do(as(t, mallory), e.gateway, p.absent)
				require.Equal(t, codes.NotFound, status.Code(errForeign), "%s: %v", p.name, errForeign)
				require.Equal(t, status.Convert(errAbsent).Proto().String(), status.Convert(errForeign).Proto().String(),
					"%s: a foreign ID answers like a missing one", p.name)
				require.Equal(t, before, e.rowCounts())
			}
		})
	}
	t.Run("ids/listing", func(t *testing.T) {
		// An unpublished app's former listing answers like one that never existed.
		f := e.makeApp(alice, "Gone")
		pub, err := e.gateway.discover.PublishApp(as(t, alice), &appsv1.PublishAppRequest{AppId: f.app})
		require.NoError(t, err)
		_, err = e.gateway.discover.UnpublishApp(as(t, alice), &appsv1.UnpublishAppRequest{AppId: f.app})
		require.NoError(t, err)
		_, errGone := e.gateway.discover.GetListing(anonymous(t), &appsv1.GetListingRequest{ListingId: pub.GetListing().GetListingId()})
		_, errAbsent := e.gateway.discover.GetListing(anonymous(t), &appsv1.GetListingRequest{ListingId: missing.listing})
		require.Equal(t, codes.NotFound, status.Code(errGone))
		require.Equal(t, status.Convert(errAbsent).Proto().String(), status.Convert(errGone).Proto().String())
	})

	t.Run("deletion_pending app", func(t *testing.T) {
		// dora's app is out of reach for her collaborators, her links and Discover at once.
		for _, who := range []person{victor, eddie} {
			_, err := e.gateway.apps.GetApp(as(t, who), &appsv1.GetAppRequest{AppId: doraApp.app})
			requireCode(t, codes.NotFound, err)
			_, err = e.gateway.prompts.ListPrompts(as(t, who), &appsv1.ListPromptsRequest{AppId: doraApp.app})
			requireCode(t, codes.NotFound, err)
			_, err = e.sandbox.internal.CheckViewer(ctxT(t), &appsv1.CheckViewerRequest{AppId: doraApp.app, ViewerOwnerId: who.id.String()})
			requireCode(t, codes.NotFound, err)
		}
		_, err := e.sandbox.internal.CheckShareToken(ctxT(t), &appsv1.CheckShareTokenRequest{AppId: doraApp.app, Token: doraApp.token})
		requireCode(t, codes.NotFound, err)
		_, err = e.gateway.discover.GetListing(anonymous(t), &appsv1.GetListingRequest{ListingId: doraApp.listing})
		requireCode(t, codes.NotFound, err)
		_, err = e.sandbox.internal.GetServableApp(ctxT(t), &appsv1.GetServableAppRequest{AppId: doraApp.app})
		requireCode(t, codes.NotFound, err)
		list, err := e.gateway.apps.ListApps(as(t, victor), &appsv1.ListAppsRequest{Shared: true})
		require.NoError(t, err)
		for _, a := range list.GetApps() {
			require.NotEqual(t, doraApp.app, a.GetAppId())
		}
		// An invitation never reaches a tenant pending deletion.
		_, err = e.gateway.sharing.AddCollaborator(as(t, alice), &appsv1.AddCollaboratorRequest{AppId: shared.app,
			Email: dora.email, Role: appsv1.Role_ROLE_VIEWER})
		requireCode(t, codes.NotFound, err)
	})
}
