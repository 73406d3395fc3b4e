package grpcapi

import (
	"context"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"

	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

type accountServer struct {
	tenantv1.UnimplementedAccountServiceServer
	store *postgres.Store
}

func (s *accountServer) GetAccount(ctx context.Context, _ *tenantv1.GetAccountRequest) (*tenantv1.GetAccountResponse, error) {
	id, err := callerOwner(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := s.store.GetAccount(ctx, id)
	if err != nil {
		return nil, err
	}
	return &tenantv1.GetAccountResponse{Account: accountToProto(acct)}, nil
}

func (s *accountServer) UpdateAccount(ctx context.Context, req *tenantv1.UpdateAccountRequest) (*tenantv1.UpdateAccountResponse, error) {
	id, err := callerOwner(ctx)
	if err != nil {
		return nil, err
	}
	acct, err := s.store.UpdateAccount(ctx, id, tenant.AccountUpdate{
		DisplayName:       req.DisplayName,
		NotificationEmail: req.NotificationEmail,
	})
	if err != nil {
		return nil, err
	}
	return &tenantv1.UpdateAccountResponse{Account: accountToProto(acct)}, nil
}
