package grpcapi

import (
	"context"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// RegisterApp implements vaultv1.AppRegistryServiceServer.
func (s *Server) RegisterApp(ctx context.Context, req *vaultv1.RegisterAppRequest) (*vaultv1.RegisterAppResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	appID, err := parseUUID("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	if err := s.vault.RegisterApp(ctx, o, appID); err != nil {
		return nil, err
	}
	return &vaultv1.RegisterAppResponse{}, nil
}

// UnregisterApp implements vaultv1.AppRegistryServiceServer.
func (s *Server) UnregisterApp(ctx context.Context, req *vaultv1.UnregisterAppRequest) (*vaultv1.UnregisterAppResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	appID, err := parseUUID("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	n, err := s.vault.UnregisterApp(ctx, o, actor(ctx, vault.PurposeSecretManagement), appID)
	if err != nil {
		return nil, err
	}
	return &vaultv1.UnregisterAppResponse{SecretsDeleted: n}, nil
}
