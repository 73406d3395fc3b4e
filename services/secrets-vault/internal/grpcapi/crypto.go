package grpcapi

import (
	"context"

	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// Encrypt implements vaultv1.CryptoServiceServer.
func (s *Server) Encrypt(ctx context.Context, req *vaultv1.EncryptRequest) (*vaultv1.EncryptResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.declaredActor(ctx, req.GetPurpose())
	if err != nil {
		return nil, err
	}
	items := make([]vault.Item, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = vault.Item{Binding: bindingFromProto(it.GetBinding()), Data: it.GetPlaintext()}
	}
	cts, ver, err := s.vault.Encrypt(ctx, o, a, items)
	if err != nil {
		return nil, err
	}
	return &vaultv1.EncryptResponse{Ciphertexts: cts, KeyVersion: ver}, nil
}

// Decrypt implements vaultv1.CryptoServiceServer.
func (s *Server) Decrypt(ctx context.Context, req *vaultv1.DecryptRequest) (*vaultv1.DecryptResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.declaredActor(ctx, req.GetPurpose())
	if err != nil {
		return nil, err
	}
	pts, err := s.vault.Decrypt(ctx, o, a, decryptItems(req.GetItems()))
	if err != nil {
		return nil, err
	}
	return &vaultv1.DecryptResponse{Plaintexts: pts}, nil
}

// Rewrap implements vaultv1.CryptoServiceServer.
func (s *Server) Rewrap(ctx context.Context, req *vaultv1.RewrapRequest) (*vaultv1.RewrapResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.declaredActor(ctx, req.GetPurpose())
	if err != nil {
		return nil, err
	}
	cts, ver, err := s.vault.Rewrap(ctx, o, a, decryptItems(req.GetItems()))
	if err != nil {
		return nil, err
	}
	return &vaultv1.RewrapResponse{Ciphertexts: cts, KeyVersion: ver}, nil
}

func decryptItems(in []*vaultv1.DecryptItem) []vault.Item {
	items := make([]vault.Item, len(in))
	for i, it := range in {
		items[i] = vault.Item{Binding: bindingFromProto(it.GetBinding()), Data: it.GetCiphertext()}
	}
	return items
}
