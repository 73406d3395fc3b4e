package grpcapi

import (
	"context"
	"encoding/base64"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/fault"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

const (
	defaultAuditPage = 50
	maxAuditPage     = 100
)

// ListAudit implements vaultv1.KeyServiceServer. The page token is the opaque position of the
// last entry returned.
func (s *Server) ListAudit(ctx context.Context, req *vaultv1.ListAuditRequest) (*vaultv1.ListAuditResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size <= 0 {
		size = defaultAuditPage
	}
	size = min(size, maxAuditPage)
	before := uuid.Nil
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err == nil {
			before, err = uuid.FromBytes(raw)
		}
		if err != nil || before == uuid.Nil {
			return nil, fault.InvalidField("page_token", "not a token this API returned")
		}
	}
	entries, err := s.vault.ListAudit(ctx, o, before, size+1)
	if err != nil {
		return nil, err
	}
	resp := &vaultv1.ListAuditResponse{}
	if len(entries) > size {
		entries = entries[:size]
		last := entries[size-1].ID
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString(last[:])
	}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, &vaultv1.AuditEntry{
			EntryId:  e.ID.String(),
			Workload: e.Workload,
			Action:   e.Action,
			Subject:  e.Subject,
			Purpose:  purposeToProto(e.Purpose),
			Time:     timestamppb.New(e.Time),
			Items:    int32(e.Items),
		})
	}
	return resp, nil
}

// RotateKey implements vaultv1.KeyServiceServer.
func (s *Server) RotateKey(ctx context.Context, _ *vaultv1.RotateKeyRequest) (*vaultv1.RotateKeyResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.vault.RotateKey(ctx, o, actor(ctx, vault.PurposeSecretManagement))
	if err != nil {
		return nil, err
	}
	return &vaultv1.RotateKeyResponse{KeyVersion: v}, nil
}

// RetireKeyVersions implements vaultv1.KeyServiceServer.
func (s *Server) RetireKeyVersions(ctx context.Context, req *vaultv1.RetireKeyVersionsRequest) (*vaultv1.RetireKeyVersionsResponse, error) {
	o, err := ownerOf(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.vault.RetireKeyVersions(ctx, o, actor(ctx, vault.PurposeSecretManagement), req.GetMinDecryptVersion())
	if err != nil {
		return nil, err
	}
	return &vaultv1.RetireKeyVersionsResponse{MinDecryptVersion: st.MinDecrypt, CurrentVersion: st.Current}, nil
}

// systemOwner reads the owner a system method acts for.
func systemOwner(s string) (owner.ID, error) {
	o, err := owner.Parse(s)
	if err != nil {
		return owner.ID{}, fault.InvalidField("owner_id", "a UUID")
	}
	return o, nil
}

// ExportSecretMetadata implements vaultv1.KeyServiceServer (system method, data-lifecycle).
func (s *Server) ExportSecretMetadata(req *vaultv1.ExportSecretMetadataRequest, stream grpc.ServerStreamingServer[vaultv1.ExportSecretMetadataResponse]) error {
	ctx := stream.Context()
	o, err := systemOwner(req.GetOwnerId())
	if err != nil {
		return err
	}
	list, err := s.vault.ExportSecretMetadata(ctx, o, actor(ctx, vault.PurposeExport))
	if err != nil {
		return err
	}
	for _, sec := range list {
		if err := stream.Send(&vaultv1.ExportSecretMetadataResponse{Secret: secretToProto(sec)}); err != nil {
			return err
		}
	}
	return nil
}

// ShredTenant implements vaultv1.KeyServiceServer (system method, data-lifecycle).
func (s *Server) ShredTenant(ctx context.Context, req *vaultv1.ShredTenantRequest) (*vaultv1.ShredTenantResponse, error) {
	o, err := systemOwner(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	res, err := s.vault.Shred(ctx, o)
	if err != nil {
		return nil, err
	}
	return &vaultv1.ShredTenantResponse{
		KeyVersionsDestroyed: res.Destroyed,
		SecretsDeleted:       res.SecretsDeleted,
		RowsDeleted:          res.RowsDeleted,
	}, nil
}
