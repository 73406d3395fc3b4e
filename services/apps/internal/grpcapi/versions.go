package grpcapi

import (
	"context"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

type versionServer struct {
	appsv1.UnimplementedVersionServiceServer
	s *Server
}

func (h *versionServer) CreateVersion(ctx context.Context, req *appsv1.CreateVersionRequest) (*appsv1.CreateVersionResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	files := make([]apps.File, len(req.GetFiles()))
	for i, f := range req.GetFiles() {
		files[i] = apps.File{Path: f.GetPath(), ContentType: f.GetContentType(), Content: f.GetContent()}
	}
	v, err := h.s.svc.CreateVersion(ctx, caller(ctx), appID, files)
	if err != nil {
		return nil, err
	}
	return &appsv1.CreateVersionResponse{Version: versionPB(v)}, nil
}

func (h *versionServer) ListVersions(ctx context.Context, req *appsv1.ListVersionsRequest) (*appsv1.ListVersionsResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	vs, err := h.s.svc.ListVersions(ctx, caller(ctx), appID)
	if err != nil {
		return nil, err
	}
	resp := &appsv1.ListVersionsResponse{Versions: make([]*appsv1.Version, len(vs))}
	for i, v := range vs {
		resp.Versions[i] = versionPB(v)
	}
	return resp, nil
}

func (h *versionServer) GetVersionFile(ctx context.Context, req *appsv1.GetVersionFileRequest) (*appsv1.GetVersionFileResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	f, err := h.s.svc.GetVersionFile(ctx, caller(ctx), appID, req.GetVersion(), req.GetPath())
	if err != nil {
		return nil, err
	}
	return &appsv1.GetVersionFileResponse{File: filePB(f)}, nil
}
