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

// GenerateDataKey implements vaultv1.CryptoServiceServer.
func (s *Server) GenerateDataKey(ctx context.Context, req *vaultv1.GenerateDataKeyRequest) (*vaultv1.GenerateDataKeyResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.declaredActor(ctx, req.GetPurpose())
	if err != nil {
		return nil, err
	}
	bindings := make([]vault.Binding, len(req.GetBindings()))
	for i, b := range req.GetBindings() {
		bindings[i] = bindingFromProto(b)
	}
	keys, ver, err := s.vault.GenerateDataKeys(ctx, o, a, bindings)
	if err != nil {
		return nil, err
	}
	resp := &vaultv1.GenerateDataKeyResponse{Keys: make([]*vaultv1.DataKey, len(keys)), KeyVersion: ver}
	for i, k := range keys {
		resp.Keys[i] = &vaultv1.DataKey{Plaintext: k.Plaintext, Wrapped: k.Wrapped}
	}
	return resp, nil
}

// DecryptDataKey implements vaultv1.CryptoServiceServer.
func (s *Server) DecryptDataKey(ctx context.Context, req *vaultv1.DecryptDataKeyRequest) (*vaultv1.DecryptDataKeyResponse, error) {
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
		items[i] = vault.Item{Binding: bindingFromProto(it.GetBinding()), Data: it.GetWrapped()}
	}
	keys, err := s.vault.DecryptDataKeys(ctx, o, a, items)
	if err != nil {
		return nil, err
	}
	return &vaultv1.DecryptDataKeyResponse{Plaintexts: keys}, nil
}
