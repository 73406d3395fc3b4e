package edge

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	sandboxv1 "github.com/forgeapps/backbone/pkg/gen/forge/sandbox/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/workload"
)

// API is one gRPC service whose JSON routes the edge serves, and how to register them: always
// through the generated Register<Svc>HandlerClient with a client on an mTLS connection, so a
// JSON call passes the same interceptors as a direct gRPC call. (Register<Svc>HandlerServer
// would call the implementation in-process and skip them; it is never used.)
type API struct {
	Service  protoreflect.ServiceDescriptor
	Register func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error
}

func api(file protoreflect.FileDescriptor, name protoreflect.Name, register func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error) API {
	sd := file.Services().ByName(name)
	if sd == nil {
		// The generated code is compiled in; a missing service is a build defect.
		panic(fmt.Sprintf("edge: service %s not in %s", name, file.Path()))
	}
	return API{Service: sd, Register: register}
}

// APIs lists, per backend workload, the services with JSON routes, in registration order.
// A test checks it covers every service of the contracts that has an HTTP annotation.
func APIs() map[string][]API {
	tenant := tenantv1.File_forge_tenant_v1_tenant_proto
	apps := appsv1.File_forge_apps_v1_apps_proto
	vault := vaultv1.File_forge_vault_v1_vault_proto
	sandbox := sandboxv1.File_forge_sandbox_v1_sandbox_proto
	lifecycle := lifecyclev1.File_forge_lifecycle_v1_lifecycle_proto
	return map[string][]API{
		workload.Tenant: {
			api(tenant, "AccountService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return tenantv1.RegisterAccountServiceHandlerClient(ctx, mux, tenantv1.NewAccountServiceClient(cc))
			}),
			api(tenant, "SessionService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return tenantv1.RegisterSessionServiceHandlerClient(ctx, mux, tenantv1.NewSessionServiceClient(cc))
			}),
			api(tenant, "CreditService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return tenantv1.RegisterCreditServiceHandlerClient(ctx, mux, tenantv1.NewCreditServiceClient(cc))
			}),
		},
		workload.Apps: {
			api(apps, "AppService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return appsv1.RegisterAppServiceHandlerClient(ctx, mux, appsv1.NewAppServiceClient(cc))
			}),
			api(apps, "PromptService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return appsv1.RegisterPromptServiceHandlerClient(ctx, mux, appsv1.NewPromptServiceClient(cc))
			}),
			api(apps, "ReferenceService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return appsv1.RegisterReferenceServiceHandlerClient(ctx, mux, appsv1.NewReferenceServiceClient(cc))
			}),
			api(apps, "VersionService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return appsv1.RegisterVersionServiceHandlerClient(ctx, mux, appsv1.NewVersionServiceClient(cc))
			}),
			api(apps, "SharingService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return appsv1.RegisterSharingServiceHandlerClient(ctx, mux, appsv1.NewSharingServiceClient(cc))
			}),
			api(apps, "DiscoverService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return appsv1.RegisterDiscoverServiceHandlerClient(ctx, mux, appsv1.NewDiscoverServiceClient(cc))
			}),
		},
		workload.SecretsVault: {
			api(vault, "SecretService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return vaultv1.RegisterSecretServiceHandlerClient(ctx, mux, vaultv1.NewSecretServiceClient(cc))
			}),
			api(vault, "KeyService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return vaultv1.RegisterKeyServiceHandlerClient(ctx, mux, vaultv1.NewKeyServiceClient(cc))
			}),
		},
		workload.SandboxOrigin: {
			api(sandbox, "ViewTicketService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return sandboxv1.RegisterViewTicketServiceHandlerClient(ctx, mux, sandboxv1.NewViewTicketServiceClient(cc))
			}),
		},
		workload.DataLifecycle: {
			api(lifecycle, "ExportService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return lifecyclev1.RegisterExportServiceHandlerClient(ctx, mux, lifecyclev1.NewExportServiceClient(cc))
			}),
			api(lifecycle, "DeletionService", func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return lifecyclev1.RegisterDeletionServiceHandlerClient(ctx, mux, lifecyclev1.NewDeletionServiceClient(cc))
			}),
		},
	}
}

// BackendOrder is the order backends are registered in (and routes classified in).
func BackendOrder() []string {
	return []string{workload.Tenant, workload.Apps, workload.SecretsVault, workload.SandboxOrigin, workload.DataLifecycle}
}

// The edge's own policy, by gRPC method. Each service decides who may call what; the edge
// decides which routes a person may reach without a credential and while their account is
// pending deletion.

// AnonymousMethods are the routes open without a credential: the methods the apps service
// declares OptionalOwner (Discover), and the ownerless methods (below). Every other route is
// refused with 401 before any service is called.
func AnonymousMethods() []string {
	return append([]string{
		appsv1.DiscoverService_ListListings_FullMethodName,
		appsv1.DiscoverService_GetListing_FullMethodName,
		appsv1.DiscoverService_GetListingFile_FullMethodName,
	}, OwnerlessMethods()...)
}

// OwnerlessMethods are the routes whose service method is a system method for the gateway:
// the request carries its own credential in its body, and the service refuses an asserted
// owner. The edge neither checks nor forwards a person's credential on them, signed in or
// not. GetDeletionByReceipt: the receipt token is the credential, and it must work after the
// account (and every session) is gone.
func OwnerlessMethods() []string {
	return []string{
		lifecyclev1.DeletionService_GetDeletionByReceipt_FullMethodName,
	}
}

// DeletionMethods are the only routes (with sign-out) a tenant pending deletion may use.
func DeletionMethods() []string {
	return []string{
		lifecyclev1.DeletionService_GetDeletion_FullMethodName,
		lifecyclev1.DeletionService_CancelDeletion_FullMethodName,
		lifecyclev1.DeletionService_GetDeletionByReceipt_FullMethodName,
	}
}

// UploadMethods are the routes whose bodies may reach MaxUploadBytes.
func UploadMethods() []string {
	return []string{
		appsv1.ReferenceService_UploadReference_FullMethodName,
		appsv1.VersionService_CreateVersion_FullMethodName,
	}
}

// Route is one JSON route and the edge's policy for it.
type Route struct {
	HTTPMethod string
	// Template is the path template of the HTTP annotation ("/v1/apps/{app_id}").
	Template string
	// FullMethod is the gRPC method it calls ("/forge.apps.v1.AppService/GetApp").
	FullMethod string
	// Anonymous routes may be called without a credential.
	Anonymous bool
	// Ownerless routes never carry an owner: a credential sent with them is ignored.
	Ownerless bool
	// DuringDeletion routes stay open to a tenant pending deletion.
	DuringDeletion bool
	// Upload routes accept the larger body limit.
	Upload bool
	// NoQuery routes have no field a query parameter could set (no fields besides the path
	// and the body): grpc-gateway would ignore a query string there, so the edge refuses it
	// as the strict query parser refuses unknown parameters elsewhere. "?owner_id=" is never
	// silently dropped where a reader could think it was honoured.
	NoQuery bool
}

// RoutesOf returns the routes of a service from its google.api.http annotations.
func RoutesOf(sd protoreflect.ServiceDescriptor) []Route {
	var out []Route
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil {
			continue
		}
		full := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
		for _, b := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
			method, tmpl := binding(b)
			if method == "" {
				continue
			}
			out = append(out, Route{
				HTTPMethod:     method,
				Template:       tmpl,
				FullMethod:     full,
				Anonymous:      slices.Contains(AnonymousMethods(), full),
				Ownerless:      slices.Contains(OwnerlessMethods(), full),
				DuringDeletion: slices.Contains(DeletionMethods(), full),
				Upload:         slices.Contains(UploadMethods(), full),
				NoQuery:        !takesQuery(md.Input(), tmpl, b.GetBody()),
			})
		}
	}
	return out
}

var pathVar = regexp.MustCompile(`\{([^}=.]+)`)

// takesQuery reports whether a query parameter could set a field of in: one not bound by
// the path template nor by the body.
func takesQuery(in protoreflect.MessageDescriptor, template, body string) bool {
	if body == "*" {
		return false
	}
	bound := map[string]bool{body: true}
	for _, m := range pathVar.FindAllStringSubmatch(template, -1) {
		bound[m[1]] = true
	}
	for i := range in.Fields().Len() {
		if !bound[string(in.Fields().Get(i).Name())] {
			return true
		}
	}
	return false
}

func binding(r *annotations.HttpRule) (method, template string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

// router finds the route of a request with grpc-gateway's own matcher, configured for
// matching exactly as the serving mux is (same registration order, same path options), so
// the policy applied is the policy of the handler that will run. A test drives every route
// through the real mux and checks both agree.
type router struct {
	mux *runtime.ServeMux
}

type routeHolder struct {
	route Route
	ok    bool
}

type routeHolderKey struct{}

func newRouter(routes []Route) (*router, error) {
	mux := runtime.NewServeMux(runtime.WithDisablePathLengthFallback())
	for _, rt := range routes {
		err := mux.HandlePath(rt.HTTPMethod, rt.Template, func(_ http.ResponseWriter, r *http.Request, _ map[string]string) {
			if h, ok := r.Context().Value(routeHolderKey{}).(*routeHolder); ok {
				h.route, h.ok = rt, true
			}
		})
		if err != nil {
			return nil, fmt.Errorf("edge: route %s %s: %w", rt.HTTPMethod, rt.Template, err)
		}
	}
	return &router{mux: mux}, nil
}

// match returns the route r would be served by.
func (rt *router) match(r *http.Request) (Route, bool) {
	h := &routeHolder{}
	rt.mux.ServeHTTP(discardWriter{}, r.WithContext(context.WithValue(r.Context(), routeHolderKey{}, h)))
	return h.route, h.ok
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
