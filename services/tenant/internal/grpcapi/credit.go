package grpcapi

import (
	"context"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"

	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

type creditServer struct {
	tenantv1.UnimplementedCreditServiceServer
	store *postgres.Store
}

func (s *creditServer) GetCreditBalance(ctx context.Context, _ *tenantv1.GetCreditBalanceRequest) (*tenantv1.GetCreditBalanceResponse, error) {
	id, err := callerOwner(ctx)
	if err != nil {
		return nil, err
	}
	balance, recent, err := s.store.Balance(ctx, id)
	if err != nil {
		return nil, err
	}
	return &tenantv1.GetCreditBalanceResponse{Balance: balance, RecentEntries: entriesToProto(recent)}, nil
}

func (s *creditServer) ListCreditEntries(ctx context.Context, req *tenantv1.ListCreditEntriesRequest) (*tenantv1.ListCreditEntriesResponse, error) {
	id, err := callerOwner(ctx)
	if err != nil {
		return nil, err
	}
	entries, next, err := s.store.ListEntries(ctx, id, tenant.PageSize(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &tenantv1.ListCreditEntriesResponse{Entries: entriesToProto(entries), NextPageToken: next}, nil
}

func (s *creditServer) GrantCredits(ctx context.Context, req *tenantv1.GrantCreditsRequest) (*tenantv1.GrantCreditsResponse, error) {
	id, err := namedOwner(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	e, err := s.store.Grant(ctx, id, tenant.GrantRequest(req.GetAmount(), req.GetReason(), req.GetIdempotencyKey()))
	if err != nil {
		return nil, err
	}
	return &tenantv1.GrantCreditsResponse{Entry: entryToProto(e), Balance: e.BalanceAfter}, nil
}

func (s *creditServer) DebitCredits(ctx context.Context, req *tenantv1.DebitCreditsRequest) (*tenantv1.DebitCreditsResponse, error) {
	id, err := callerOwner(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.store.Debit(ctx, id, tenant.DebitRequest(req.GetAmount(), req.GetReason(), req.GetIdempotencyKey()))
	if err != nil {
		return nil, err
	}
	return &tenantv1.DebitCreditsResponse{Entry: entryToProto(e), Balance: e.BalanceAfter}, nil
}
