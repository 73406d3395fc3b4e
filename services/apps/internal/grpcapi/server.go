// Package grpcapi is the apps service's gRPC API: thin handlers that read the verified caller
// (owner and workload, set by the interceptor chain), convert messages and call the domain,
// plus the workload table saying which workload may call each method. Requests are already
// validated by the interceptor chain (protovalidate) when a handler runs.
package grpcapi

import (
	"context"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/fault"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

// Table is the apps service's workload table.
//
//   - gateway: every person-facing method, asserting the signed-in owner (Discover reads also
//     anonymously).
//   - builder (external): builds for the owner it asserts: reads the app, its prompts and
//     references, adds response entries and versions.
//   - sandbox-origin: the serving checks, as system methods.
//   - data-lifecycle: export, disable, restore and purge of one owner, as system methods.
func Table() authz.Table {
	gw, builder := workload.Gateway, workload.Builder
	return authz.Table{
		appsv1.AppService_CreateApp_FullMethodName: authz.Owner(gw),
		appsv1.AppService_GetApp_FullMethodName:    authz.Owner(gw, builder),
		appsv1.AppService_ListApps_FullMethodName:  authz.Owner(gw),
		appsv1.AppService_UpdateApp_FullMethodName: authz.Owner(gw),
		appsv1.AppService_DeleteApp_FullMethodName: authz.Owner(gw),

		appsv1.PromptService_AddPrompt_FullMethodName:       authz.Owner(gw, builder),
		appsv1.PromptService_ListPrompts_FullMethodName:     authz.Owner(gw, builder),
		appsv1.PromptService_ListPromptReads_FullMethodName: authz.Owner(gw),

		appsv1.ReferenceService_UploadReference_FullMethodName: authz.Owner(gw),
		appsv1.ReferenceService_ListReferences_FullMethodName:  authz.Owner(gw, builder),
		appsv1.ReferenceService_GetReference_FullMethodName:    authz.Owner(gw, builder),
		appsv1.ReferenceService_DeleteReference_FullMethodName: authz.Owner(gw),

		appsv1.VersionService_CreateVersion_FullMethodName:  authz.Owner(gw, builder),
		appsv1.VersionService_ListVersions_FullMethodName:   authz.Owner(gw, builder),
		appsv1.VersionService_GetVersionFile_FullMethodName: authz.Owner(gw, builder),

		appsv1.SharingService_CreateShareLink_FullMethodName:    authz.Owner(gw),
		appsv1.SharingService_ListShareLinks_FullMethodName:     authz.Owner(gw),
		appsv1.SharingService_RevokeShareLink_FullMethodName:    authz.Owner(gw),
		appsv1.SharingService_AddCollaborator_FullMethodName:    authz.Owner(gw),
		appsv1.SharingService_ListCollaborators_FullMethodName:  authz.Owner(gw),
		appsv1.SharingService_RemoveCollaborator_FullMethodName: authz.Owner(gw),

		appsv1.DiscoverService_PublishApp_FullMethodName:     authz.Owner(gw),
		appsv1.DiscoverService_UnpublishApp_FullMethodName:   authz.Owner(gw),
		appsv1.DiscoverService_ListListings_FullMethodName:   authz.OptionalOwner(gw),
		appsv1.DiscoverService_GetListing_FullMethodName:     authz.OptionalOwner(gw),
		appsv1.DiscoverService_GetListingFile_FullMethodName: authz.OptionalOwner(gw),
		appsv1.DiscoverService_RemixListing_FullMethodName:   authz.Owner(gw),

		appsv1.AppsInternalService_GetServableApp_FullMethodName:  authz.SystemMethod(workload.SandboxOrigin),
		appsv1.AppsInternalService_CheckViewer_FullMethodName:     authz.SystemMethod(workload.SandboxOrigin),
		appsv1.AppsInternalService_CheckShareToken_FullMethodName: authz.SystemMethod(workload.SandboxOrigin),
		appsv1.AppsInternalService_ExportOwner_FullMethodName:     authz.SystemMethod(workload.DataLifecycle),
		appsv1.AppsInternalService_DisableOwner_FullMethodName:    authz.SystemMethod(workload.DataLifecycle),
		appsv1.AppsInternalService_RestoreOwner_FullMethodName:    authz.SystemMethod(workload.DataLifecycle),
		appsv1.AppsInternalService_PurgeOwner_FullMethodName:      authz.SystemMethod(workload.DataLifecycle),
	}
}

// Server holds the handlers of every apps gRPC service.
type Server struct {
	svc *apps.Service
}

// New returns the handlers over the domain.
func New(svc *apps.Service) *Server { return &Server{svc: svc} }

// Register registers every service of the API on r.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	appsv1.RegisterAppServiceServer(r, &appServer{s: s})
	appsv1.RegisterPromptServiceServer(r, &promptServer{s: s})
	appsv1.RegisterReferenceServiceServer(r, &referenceServer{s: s})
	appsv1.RegisterVersionServiceServer(r, &versionServer{s: s})
	appsv1.RegisterSharingServiceServer(r, &sharingServer{s: s})
	appsv1.RegisterDiscoverServiceServer(r, &discoverServer{s: s})
	appsv1.RegisterAppsInternalServiceServer(r, &internalServer{s: s})
}

// caller reads the verified owner (zero when none) and workload.
func caller(ctx context.Context) apps.Caller {
	var c apps.Caller
	if o, ok := owner.FromContext(ctx); ok {
		c.Owner = o.ID
	}
	if w, ok := workload.FromContext(ctx); ok {
		c.Workload = w.Name()
	}
	return c
}

// id parses a UUID the validator already checked; the error is for defence only.
func id(field, s string) (uuid.UUID, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, fault.InvalidField(field, "a UUID")
	}
	return u, nil
}

// ownerID parses an owner ID named in a system method's request.
func ownerID(s string) (owner.ID, error) {
	o, err := owner.Parse(s)
	if err != nil {
		return owner.ID{}, fault.InvalidField("owner_id", "a UUID")
	}
	return o, nil
}
