package edge_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	sandboxv1 "github.com/forgeapps/backbone/pkg/gen/forge/sandbox/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
	"github.com/forgeapps/backbone/services/gateway/internal/edge"
)

// TestEveryServiceWithRoutesIsServed fails when a contract gains a service with HTTP
// annotations that the edge does not register.
func TestEveryServiceWithRoutesIsServed(t *testing.T) {
	served := map[protoreflect.FullName]bool{}
	for _, apis := range edge.APIs() {
		for _, a := range apis {
			served[a.Service.FullName()] = true
		}
	}
	for _, fd := range []protoreflect.FileDescriptor{
		tenantv1.File_forge_tenant_v1_tenant_proto, appsv1.File_forge_apps_v1_apps_proto,
		vaultv1.File_forge_vault_v1_vault_proto, sandboxv1.File_forge_sandbox_v1_sandbox_proto,
		lifecyclev1.File_forge_lifecycle_v1_lifecycle_proto,
	} {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			hasRoute := false
			for j := range sd.Methods().Len() {
				if proto.HasExtension(sd.Methods().Get(j).Options(), annotations.E_Http) {
					hasRoute = true
				}
			}
			require.Equal(t, hasRoute, served[sd.FullName()], "service %s: has routes %v, served %v", sd.FullName(), hasRoute, served[sd.FullName()])
		}
	}
}

// recordingBackend is a gRPC server (real mTLS) that answers Authenticate for one fixed
// tenant and records the method of every other call, answering Unimplemented.
type recordingBackend struct {
	mu      sync.Mutex
	methods []string
	owners  []owner.ID
}

func (b *recordingBackend) handle(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	if method == tenantv1.SessionService_Authenticate_FullMethodName {
		var in tenantv1.AuthenticateRequest
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		return stream.SendMsg(&tenantv1.AuthenticateResponse{OwnerId: routeTestOwner.String(), HomeRegion: "us-east",
			Status: tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE, SessionId: "5f0c9d43-3a3a-4d7e-9a55-2a3c1d0b9e11"})
	}
	// No server interceptor runs here: read the reserved metadata the edge's client sent.
	var o owner.ID
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok {
		if ids := md.Get(owner.MDOwnerID); len(ids) > 0 {
			o, _ = owner.Parse(ids[0])
		}
	}
	b.mu.Lock()
	b.methods = append(b.methods, method)
	b.owners = append(b.owners, o)
	b.mu.Unlock()
	return status.Error(codes.Unimplemented, "recorded")
}

func (b *recordingBackend) last() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.methods) == 0 {
		return "", 0
	}
	return b.methods[len(b.methods)-1], len(b.methods)
}

// lastOwner is the owner the last recorded call carried (zero for none).
func (b *recordingBackend) lastOwner() owner.ID {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.owners) == 0 {
		return owner.ID{}
	}
	return b.owners[len(b.owners)-1]
}

var routeTestOwner = owner.MustParse("7a1e5f4c-2b8d-4c1e-9f3a-6d5b4c3a2b10")

var templateVar = regexp.MustCompile(`\{([^}=]+)(=([^}]*))?\}`)

// samplePath fills a path template with values every field type accepts.
func samplePath(tmpl string) string {
	return templateVar.ReplaceAllStringFunc(tmpl, func(v string) string {
		m := templateVar.FindStringSubmatch(v)
		switch {
		case m[3] == "":
			return "1"
		case strings.Contains(m[3], "**"):
			return "a/b.txt"
		}
		return strings.ReplaceAll(m[3], "*", "1")
	})
}

// TestPolicyFollowsTheHandlerThatRuns drives every route of every service through the real
// mux and checks the gRPC method that was called is the one whose policy the edge applied:
// routes are classified by the same matcher, so an anonymous or deletion exception can
// never apply to another method than the one named.
func TestPolicyFollowsTheHandlerThatRuns(t *testing.T) {
	pki := grpctest.NewPKI(t)
	backend := &recordingBackend{}
	gw := pki.Source(t, workload.Gateway)
	cache := auth.NewCache(auth.CacheConfig{TTL: 0})
	backends := map[string]grpc.ClientConnInterface{}
	for _, name := range edge.BackendOrder() {
		srv := grpc.NewServer(grpc.Creds(pki.Source(t, name).ServerCredentials()), grpc.UnknownServiceHandler(backend.handle))
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		cc, err := grpcclient.Dial(lis.Addr().String(), gw.ClientCredentials(pki.ID(name)), nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cc.Close() })
		backends[name] = cc
	}
	sessions := tenantv1.NewSessionServiceClient(backends[workload.Tenant])
	verifier, err := auth.NewVerifier(auth.VerifierConfig{Issuer: "https://127.0.0.1:1/unused", Audience: "x"})
	require.NoError(t, err)
	e, err := edge.New(context.Background(), edge.Config{
		ConsoleOrigin: consoleOrigin, IPRate: 1e6, IPBurst: 1e6, TenantRate: 1e6, TenantBurst: 1e6,
		MaxBodyBytes: 1 << 20, MaxUploadBytes: 16 << 20,
	}, edge.Deps{Auth: auth.NewAuthenticator(sessions, verifier, cache, nil), Sessions: sessions, Backends: backends})
	require.NoError(t, err)
	srv := httptest.NewTLSServer(e)
	t.Cleanup(srv.Close)
	token := "fgs_" + strings.Repeat("A", 43)

	routes := e.Routes()
	require.Greater(t, len(routes), 40, "every service's routes are registered")
	var anonymous []string
	for _, r := range routes {
		t.Run(r.HTTPMethod+" "+r.Template, func(t *testing.T) {
			try := func(bearer string) (int, string) {
				var body *strings.Reader
				if r.HTTPMethod != http.MethodGet && r.HTTPMethod != http.MethodDelete {
					body = strings.NewReader(`{}`)
				} else {
					body = strings.NewReader("")
				}
				hr, err := http.NewRequest(r.HTTPMethod, srv.URL+samplePath(r.Template), body)
				require.NoError(t, err)
				if bearer != "" {
					hr.Header.Set("Authorization", "Bearer "+bearer)
				}
				_, before := backend.last()
				resp, err := srv.Client().Do(hr)
				require.NoError(t, err)
				resp.Body.Close()
				method, after := backend.last()
				if after == before {
					return resp.StatusCode, ""
				}
				return resp.StatusCode, method
			}
			code, method := try(token)
			require.Equal(t, http.StatusNotImplemented, code, "the call reached a backend")
			require.Equal(t, r.FullMethod, method, "the policy applied is the policy of the method called")
			if r.Ownerless {
				require.True(t, backend.lastOwner().IsZero(), "an ownerless route never carries the signed-in person's owner")
			} else {
				require.Equal(t, routeTestOwner, backend.lastOwner(), "the verified owner travels with the call")
			}

			code, method = try("")
			if r.Anonymous {
				anonymous = append(anonymous, r.FullMethod)
				require.Equal(t, r.FullMethod, method)
				return
			}
			require.Equal(t, http.StatusUnauthorized, code)
			require.Empty(t, method, "no backend call without a credential")
		})
	}
	// Written out a second time so that opening a route to anonymous callers is a visible,
	// reviewed change of this test too.
	want := []string{
		appsv1.DiscoverService_GetListing_FullMethodName,
		appsv1.DiscoverService_GetListingFile_FullMethodName,
		appsv1.DiscoverService_ListListings_FullMethodName,
		lifecyclev1.DeletionService_GetDeletionByReceipt_FullMethodName,
	}
	slices.Sort(want)
	slices.Sort(anonymous)
	require.Equal(t, want, anonymous, "exactly the Discover listing routes and the receipt lookup are anonymous")
	declared := edge.AnonymousMethods()
	slices.Sort(declared)
	require.Equal(t, want, declared)
}
