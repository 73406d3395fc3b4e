package grpcapi

import (
	"context"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
)

type referenceServer struct {
	appsv1.UnimplementedReferenceServiceServer
	s *Server
}

func (h *referenceServer) UploadReference(ctx context.Context, req *appsv1.UploadReferenceRequest) (*appsv1.UploadReferenceResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	r, err := h.s.svc.UploadReference(ctx, caller(ctx), appID, req.GetFilename(), req.GetContentType(), req.GetContent())
	if err != nil {
		return nil, err
	}
	return &appsv1.UploadReferenceResponse{Reference: referencePB(r)}, nil
}

func (h *referenceServer) ListReferences(ctx context.Context, req *appsv1.ListReferencesRequest) (*appsv1.ListReferencesResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	refs, err := h.s.svc.ListReferences(ctx, caller(ctx), appID)
	if err != nil {
		return nil, err
	}
	resp := &appsv1.ListReferencesResponse{References: make([]*appsv1.Reference, len(refs))}
	for i, r := range refs {
		resp.References[i] = referencePB(r)
	}
	return resp, nil
}

func (h *referenceServer) GetReference(ctx context.Context, req *appsv1.GetReferenceRequest) (*appsv1.GetReferenceResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	refID, err := id("reference_id", req.GetReferenceId())
	if err != nil {
		return nil, err
	}
	r, content, err := h.s.svc.GetReference(ctx, caller(ctx), appID, refID)
	if err != nil {
		return nil, err
	}
	return &appsv1.GetReferenceResponse{Reference: referencePB(r), Content: content}, nil
}

func (h *referenceServer) DeleteReference(ctx context.Context, req *appsv1.DeleteReferenceRequest) (*appsv1.DeleteReferenceResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	refID, err := id("reference_id", req.GetReferenceId())
	if err != nil {
		return nil, err
	}
	if err := h.s.svc.DeleteReference(ctx, caller(ctx), appID, refID); err != nil {
		return nil, err
	}
	return &appsv1.DeleteReferenceResponse{}, nil
}
