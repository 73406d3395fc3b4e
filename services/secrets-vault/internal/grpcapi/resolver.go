package grpcapi

import (
	"context"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// ResolveSecret implements vaultv1.SecretResolverServiceServer. The table lets only
// sandbox-origin call it, asserting the owner of the app it serves; a secret of another app or
// another owner answers NotFound, as a missing one does.
func (s *Server) ResolveSecret(ctx context.Context, req *vaultv1.ResolveSecretRequest) (*vaultv1.ResolveSecretResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	appID, err := parseUUID("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	r, err := s.vault.ResolveSecret(ctx, o, actor(ctx, vault.PurposeServe), appID, req.GetName())
	if err != nil {
		return nil, err
	}
	// The value leaves as the response field (debug_redact), its one legitimate destination.
	return &vaultv1.ResolveSecretResponse{
		Value:        r.Value.Reveal(),
		UpstreamHost: r.UpstreamHost,
		Injection:    injectionToProto(r.Injection),
	}, nil
}
