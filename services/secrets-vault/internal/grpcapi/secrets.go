package grpcapi

import (
	"context"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// PutSecret implements vaultv1.SecretServiceServer.
func (s *Server) PutSecret(ctx context.Context, req *vaultv1.PutSecretRequest) (*vaultv1.PutSecretResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	appID, err := parseUUID("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	sec, err := s.vault.PutSecret(ctx, o, actor(ctx, vault.PurposeSecretManagement), vault.NewSecret{
		AppID:        appID,
		Name:         req.GetName(),
		Value:        secret.New(req.GetValue()),
		UpstreamHost: req.GetUpstreamHost(),
		Injection:    injectionFromProto(req.GetInjection()),
	})
	if err != nil {
		return nil, err
	}
	return &vaultv1.PutSecretResponse{Secret: secretToProto(sec)}, nil
}

// ListSecrets implements vaultv1.SecretServiceServer.
func (s *Server) ListSecrets(ctx context.Context, req *vaultv1.ListSecretsRequest) (*vaultv1.ListSecretsResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	appID, err := parseUUID("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	list, err := s.vault.ListSecrets(ctx, o, appID)
	if err != nil {
		return nil, err
	}
	resp := &vaultv1.ListSecretsResponse{Secrets: make([]*vaultv1.Secret, len(list))}
	for i, sec := range list {
		resp.Secrets[i] = secretToProto(sec)
	}
	return resp, nil
}

// RotateSecret implements vaultv1.SecretServiceServer.
func (s *Server) RotateSecret(ctx context.Context, req *vaultv1.RotateSecretRequest) (*vaultv1.RotateSecretResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	appID, err := parseUUID("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	sec, err := s.vault.RotateSecret(ctx, o, actor(ctx, vault.PurposeSecretManagement), appID, req.GetName(), secret.New(req.GetValue()))
	if err != nil {
		return nil, err
	}
	return &vaultv1.RotateSecretResponse{Secret: secretToProto(sec)}, nil
}

// DeleteSecret implements vaultv1.SecretServiceServer.
func (s *Server) DeleteSecret(ctx context.Context, req *vaultv1.DeleteSecretRequest) (*vaultv1.DeleteSecretResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	appID, err := parseUUID("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	if err := s.vault.DeleteSecret(ctx, o, actor(ctx, vault.PurposeSecretManagement), appID, req.GetName()); err != nil {
		return nil, err
	}
	return &vaultv1.DeleteSecretResponse{}, nil
}
