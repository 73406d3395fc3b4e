package grpcapi

import (
	"context"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/fault"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"

	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

type adminServer struct {
	tenantv1.UnimplementedTenantAdminServiceServer
	store *postgres.Store
}

func (s *adminServer) ChangePlan(ctx context.Context, req *tenantv1.ChangePlanRequest) (*tenantv1.ChangePlanResponse, error) {
	id, err := namedOwner(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	plan, err := planFromProto(req.GetPlan())
	if err != nil {
		return nil, err
	}
	if plan == "" {
		return nil, fault.InvalidField("plan", "a plan is required")
	}
	acct, err := s.store.ChangePlan(ctx, id, plan)
	if err != nil {
		return nil, err
	}
	return &tenantv1.ChangePlanResponse{Account: accountToProto(acct)}, nil
}

func (s *adminServer) LookupHomeRegion(ctx context.Context, req *tenantv1.LookupHomeRegionRequest) (*tenantv1.LookupHomeRegionResponse, error) {
	id, err := namedOwner(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	home, err := s.store.LookupHomeRegion(ctx, id)
	if err != nil {
		return nil, err
	}
	return &tenantv1.LookupHomeRegionResponse{HomeRegion: home.String()}, nil
}

func (s *adminServer) ResolveEmail(ctx context.Context, req *tenantv1.ResolveEmailRequest) (*tenantv1.ResolveEmailResponse, error) {
	id, plan, err := s.store.ResolveEmail(ctx, req.GetEmail())
	if err != nil {
		return nil, err
	}
	return &tenantv1.ResolveEmailResponse{OwnerId: id.String(), Plan: planToProto[plan]}, nil
}

func (s *adminServer) DisableTenant(ctx context.Context, req *tenantv1.DisableTenantRequest) (*tenantv1.DisableTenantResponse, error) {
	id, err := namedOwner(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	n, err := s.store.DisableTenant(ctx, id)
	if err != nil {
		return nil, err
	}
	return &tenantv1.DisableTenantResponse{SessionsRevoked: int32(min(n, 1<<31-1))}, nil
}

func (s *adminServer) RestoreTenant(ctx context.Context, req *tenantv1.RestoreTenantRequest) (*tenantv1.RestoreTenantResponse, error) {
	id, err := namedOwner(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	if err := s.store.RestoreTenant(ctx, id); err != nil {
		return nil, err
	}
	return &tenantv1.RestoreTenantResponse{}, nil
}

func (s *adminServer) ExportTenant(req *tenantv1.ExportTenantRequest, stream grpc.ServerStreamingServer[tenantv1.ExportTenantResponse]) error {
	id, err := namedOwner(req.GetOwnerId())
	if err != nil {
		return err
	}
	return s.store.Export(stream.Context(), id,
		func(a tenant.Account) error {
			return stream.Send(&tenantv1.ExportTenantResponse{Item: &tenantv1.ExportTenantResponse_Account{Account: accountToProto(a)}})
		},
		func(e tenant.CreditEntry) error {
			return stream.Send(&tenantv1.ExportTenantResponse{Item: &tenantv1.ExportTenantResponse_CreditEntry{CreditEntry: entryToProto(e)}})
		})
}

func (s *adminServer) PurgeTenant(ctx context.Context, req *tenantv1.PurgeTenantRequest) (*tenantv1.PurgeTenantResponse, error) {
	id, err := namedOwner(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	res, err := s.store.PurgeBatch(ctx, id, int(req.GetBatchSize()), nil)
	if err != nil {
		return nil, err
	}
	return &tenantv1.PurgeTenantResponse{RowsDeleted: res.RowsDeleted, Done: res.Done}, nil
}
