package interceptors_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/errmap"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/interceptors"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/workload"
)

// fakeTenant implements a few tenant RPCs to observe what handlers receive.
type fakeTenant struct {
	tenantv1.UnimplementedAccountServiceServer
	tenantv1.UnimplementedSessionServiceServer
	tenantv1.UnimplementedTenantAdminServiceServer
	calls atomic.Int64
}

func (f *fakeTenant) GetAccount(ctx context.Context, _ *tenantv1.GetAccountRequest) (*tenantv1.GetAccountResponse, error) {
	f.calls.Add(1)
	o, ok := owner.FromContext(ctx)
	if !ok {
		return nil, errors.New("handler ran without an owner")
	}
	return &tenantv1.GetAccountResponse{Account: &tenantv1.Account{OwnerId: o.ID.String(), HomeRegion: o.HomeRegion.String()}}, nil
}

func (f *fakeTenant) UpdateAccount(_ context.Context, req *tenantv1.UpdateAccountRequest) (*tenantv1.UpdateAccountResponse, error) {
	f.calls.Add(1)
	switch req.GetDisplayName() {
	case "panic":
		panic("display name panic carrying sk-canary-1234")
	case "nil":
		var m map[string]int
		m["x"]++ // a runtime error panic
	case "db":
		return nil, errors.New("pq: relation \"accounts_secret\" does not exist")
	}
	return &tenantv1.UpdateAccountResponse{}, nil
}

func (f *fakeTenant) Authenticate(ctx context.Context, _ *tenantv1.AuthenticateRequest) (*tenantv1.AuthenticateResponse, error) {
	f.calls.Add(1)
	if _, ok := owner.FromContext(ctx); ok {
		return nil, errors.New("system method ran with an owner")
	}
	return &tenantv1.AuthenticateResponse{}, nil
}

func (f *fakeTenant) ExportTenant(_ *tenantv1.ExportTenantRequest, stream grpc.ServerStreamingServer[tenantv1.ExportTenantResponse]) error {
	f.calls.Add(1)
	return stream.Send(&tenantv1.ExportTenantResponse{})
}

func table() authz.Table {
	return authz.Table{
		tenantv1.AccountService_GetAccount_FullMethodName:           authz.Owner(workload.Gateway),
		tenantv1.AccountService_UpdateAccount_FullMethodName:        authz.Owner(workload.Gateway),
		tenantv1.SessionService_SignIn_FullMethodName:               authz.SystemMethod(workload.Gateway),
		tenantv1.SessionService_Authenticate_FullMethodName:         authz.SystemMethod(workload.Gateway),
		tenantv1.SessionService_ListSessions_FullMethodName:         authz.Owner(workload.Gateway),
		tenantv1.SessionService_RevokeSession_FullMethodName:        authz.Owner(workload.Gateway),
		tenantv1.SessionService_RevokeAllSessions_FullMethodName:    authz.Owner(workload.Gateway),
		tenantv1.TenantAdminService_ChangePlan_FullMethodName:       authz.SystemMethod(workload.Billing),
		tenantv1.TenantAdminService_LookupHomeRegion_FullMethodName: authz.SystemMethod(workload.Gateway),
		tenantv1.TenantAdminService_ResolveEmail_FullMethodName:     authz.SystemMethod(workload.Apps),
		tenantv1.TenantAdminService_DisableTenant_FullMethodName:    authz.SystemMethod(workload.DataLifecycle),
		tenantv1.TenantAdminService_RestoreTenant_FullMethodName:    authz.SystemMethod(workload.DataLifecycle),
		tenantv1.TenantAdminService_ExportTenant_FullMethodName:     authz.SystemMethod(workload.DataLifecycle),
		tenantv1.TenantAdminService_PurgeTenant_FullMethodName:      authz.SystemMethod(workload.DataLifecycle),
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	pki  *grpctest.PKI
	addr string
	fake *fakeTenant
	logs *syncBuffer
}

func start(t *testing.T) *env {
	t.Helper()
	e := &env{pki: grpctest.NewPKI(t), fake: &fakeTenant{}, logs: &syncBuffer{}}
	e.addr = e.pki.Start(t, grpctest.Server{
		Name:   workload.Tenant,
		Table:  table(),
		Region: owner.USEast,
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)),
		Register: func(r grpc.ServiceRegistrar) {
			tenantv1.RegisterAccountServiceServer(r, e.fake)
			tenantv1.RegisterSessionServiceServer(r, e.fake)
			tenantv1.RegisterTenantAdminServiceServer(r, e.fake)
		},
	})
	return e
}

// rawConn dials as workload `as` WITHOUT the suite's client interceptors, so a test can put
// any metadata on the wire, as an attacker holding that workload's certificate could.
func (e *env) rawConn(t *testing.T, as string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(e.pki.Source(t, as).ClientCredentials(e.pki.ID(workload.Tenant))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func forged(o owner.ID, region string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), owner.MDOwnerID, o.String(), owner.MDOwnerRegion, region)
}

func TestChainOrder(t *testing.T) {
	chain, err := interceptors.ServerChain(interceptors.Config{Table: table().WithStandardServices(), Region: owner.USEast})
	require.NoError(t, err)
	var names []string
	for _, n := range chain {
		names = append(names, n.Name)
	}
	require.Equal(t, []string{"recovery", "logging", "errors", "authorization", "owner", "validation"}, names)
}

func TestOwnerFlowsFromVerifiedContext(t *testing.T) {
	e := start(t)
	o := owner.New()
	client := tenantv1.NewAccountServiceClient(e.pki.Dial(t, e.addr, workload.Gateway, workload.Tenant))
	resp, err := client.GetAccount(grpctest.AsOwner(context.Background(), o), &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Equal(t, o.String(), resp.GetAccount().GetOwnerId())
	require.Contains(t, e.logs.String(), o.String(), "the access log names the owner")
	require.Contains(t, e.logs.String(), "spiffe://forge.internal/gateway", "the access log names the workload")
}

func TestRefusedBeforeHandler(t *testing.T) {
	victim := owner.New()
	tests := []struct {
		name string
		as   string
		call func(t *testing.T, e *env) error
		want codes.Code
	}{
		{
			name: "workload not listed for the method",
			as:   workload.Apps,
			call: func(t *testing.T, e *env) error {
				_, err := tenantv1.NewAccountServiceClient(e.rawConn(t, workload.Apps)).GetAccount(forged(victim, "us-east"), &tenantv1.GetAccountRequest{})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "owner forged on a system method by its listed caller",
			call: func(t *testing.T, e *env) error {
				_, err := tenantv1.NewSessionServiceClient(e.rawConn(t, workload.Gateway)).Authenticate(forged(victim, "us-east"), &tenantv1.AuthenticateRequest{Credential: &tenantv1.AuthenticateRequest_SessionToken{SessionToken: "x"}})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "owner forged by a workload that may only call system methods",
			call: func(t *testing.T, e *env) error {
				_, err := tenantv1.NewTenantAdminServiceClient(e.rawConn(t, workload.Billing)).ChangePlan(forged(victim, "us-east"), &tenantv1.ChangePlanRequest{OwnerId: victim.String(), Plan: tenantv1.Plan_PLAN_PRO})
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "owner method without an owner",
			call: func(t *testing.T, e *env) error {
				_, err := tenantv1.NewAccountServiceClient(e.rawConn(t, workload.Gateway)).GetAccount(context.Background(), &tenantv1.GetAccountRequest{})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "malformed owner",
			call: func(t *testing.T, e *env) error {
				ctx := metadata.AppendToOutgoingContext(context.Background(), owner.MDOwnerID, "alice@example.com", owner.MDOwnerRegion, "us-east")
				_, err := tenantv1.NewAccountServiceClient(e.rawConn(t, workload.Gateway)).GetAccount(ctx, &tenantv1.GetAccountRequest{})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "two owners",
			call: func(t *testing.T, e *env) error {
				ctx := metadata.AppendToOutgoingContext(forged(victim, "us-east"), owner.MDOwnerID, owner.New().String())
				_, err := tenantv1.NewAccountServiceClient(e.rawConn(t, workload.Gateway)).GetAccount(ctx, &tenantv1.GetAccountRequest{})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "unauthenticated and invalid: authentication is checked before validation",
			call: func(t *testing.T, e *env) error {
				bad := "not-an-email"
				_, err := tenantv1.NewAccountServiceClient(e.rawConn(t, workload.Gateway)).UpdateAccount(context.Background(), &tenantv1.UpdateAccountRequest{NotificationEmail: &bad})
				return err
			},
			want: codes.Unauthenticated,
		},
		{
			name: "invalid request of a verified owner",
			call: func(t *testing.T, e *env) error {
				bad := "not-an-email"
				_, err := tenantv1.NewAccountServiceClient(e.rawConn(t, workload.Gateway)).UpdateAccount(forged(victim, "us-east"), &tenantv1.UpdateAccountRequest{NotificationEmail: &bad})
				return err
			},
			want: codes.InvalidArgument,
		},
		{
			name: "streaming method from an unlisted workload",
			call: func(t *testing.T, e *env) error {
				stream, err := tenantv1.NewTenantAdminServiceClient(e.rawConn(t, workload.Gateway)).ExportTenant(context.Background(), &tenantv1.ExportTenantRequest{OwnerId: victim.String()})
				if err != nil {
					return err
				}
				_, err = stream.Recv()
				return err
			},
			want: codes.PermissionDenied,
		},
		{
			name: "plaintext client",
			call: func(t *testing.T, e *env) error {
				cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				require.NoError(t, err)
				defer cc.Close()
				_, err = tenantv1.NewAccountServiceClient(cc).GetAccount(forged(victim, "us-east"), &tenantv1.GetAccountRequest{})
				return err
			},
			want: codes.Unavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t)
			err := tt.call(t, e)
			require.Equal(t, tt.want, status.Code(err), "got %v", err)
			require.Zero(t, e.fake.calls.Load(), "the handler must not run")
		})
	}
}

func TestWrongRegionNamesHome(t *testing.T) {
	e := start(t)
	_, err := tenantv1.NewAccountServiceClient(e.rawConn(t, workload.Gateway)).GetAccount(forged(owner.New(), "eu-west"), &tenantv1.GetAccountRequest{})
	st := status.Convert(err)
	require.Equal(t, codes.FailedPrecondition, st.Code())
	require.Contains(t, st.Message(), "eu-west")
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	require.NotNil(t, info)
	require.Equal(t, interceptors.ReasonWrongRegion, info.GetReason())
	require.Equal(t, "eu-west", info.GetMetadata()["home_region"])
	require.Zero(t, e.fake.calls.Load())
}

func TestSystemMethodRunsWithoutOwner(t *testing.T) {
	e := start(t)
	client := tenantv1.NewSessionServiceClient(e.pki.Dial(t, e.addr, workload.Gateway, workload.Tenant))
	_, err := client.Authenticate(context.Background(), &tenantv1.AuthenticateRequest{Credential: &tenantv1.AuthenticateRequest_SessionToken{SessionToken: "x"}})
	require.NoError(t, err)
}

func TestInternalErrorsAreMaskedWithLoggedID(t *testing.T) {
	tests := []struct {
		name      string
		display   string
		leak      string
		logsLeak  bool
		logReason string
	}{
		{name: "handler error", display: "db", leak: "accounts_secret", logsLeak: true},
		{name: "panic with a value that may hold request data", display: "panic", leak: "sk-canary-1234"},
		{name: "runtime error panic", display: "nil", leak: "assignment to entry in nil map", logsLeak: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t)
			name := tt.display
			_, err := tenantv1.NewAccountServiceClient(e.pki.Dial(t, e.addr, workload.Gateway, workload.Tenant)).
				UpdateAccount(grpctest.AsOwner(context.Background(), owner.New()), &tenantv1.UpdateAccountRequest{DisplayName: &name})
			st := status.Convert(err)
			require.Equal(t, codes.Internal, st.Code())
			require.NotContains(t, st.Message(), tt.leak)
			var id string
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					id = i.GetMetadata()[errmap.MetadataErrorID]
				}
			}
			require.NotEmpty(t, id)
			require.Contains(t, st.Message(), id)
			logs := e.logs.String()
			require.Contains(t, logs, id, "the error id is in the log")
			require.Equal(t, tt.logsLeak, strings.Contains(logs, tt.leak))
		})
	}
}

func TestClientForwardsOnlyVerifiedOwner(t *testing.T) {
	e := start(t)
	client := tenantv1.NewAccountServiceClient(e.pki.Dial(t, e.addr, workload.Gateway, workload.Tenant))
	real, other := owner.New(), owner.New()

	// Application code (or a header copied from a request) put another owner in the outgoing
	// metadata; the client interceptor replaces it with the verified context value.
	ctx := metadata.AppendToOutgoingContext(grpctest.AsOwner(context.Background(), real), owner.MDOwnerID, other.String())
	resp, err := client.GetAccount(ctx, &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Equal(t, real.String(), resp.GetAccount().GetOwnerId())

	// Without a verified owner, a reserved key in outgoing metadata is dropped, not sent.
	ctx = metadata.AppendToOutgoingContext(context.Background(), owner.MDOwnerID, other.String(), owner.MDOwnerRegion, "us-east")
	_, err = client.GetAccount(ctx, &tenantv1.GetAccountRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}
