package grpcapi

import (
	"context"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

type appServer struct {
	appsv1.UnimplementedAppServiceServer
	s *Server
}

func (h *appServer) CreateApp(ctx context.Context, req *appsv1.CreateAppRequest) (*appsv1.CreateAppResponse, error) {
	a, err := h.s.svc.CreateApp(ctx, caller(ctx), apps.AppInput{Name: req.GetName(), Description: req.GetDescription()})
	if err != nil {
		return nil, err
	}
	return &appsv1.CreateAppResponse{App: appPB(a)}, nil
}

func (h *appServer) GetApp(ctx context.Context, req *appsv1.GetAppRequest) (*appsv1.GetAppResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	a, err := h.s.svc.GetApp(ctx, caller(ctx), appID)
	if err != nil {
		return nil, err
	}
	return &appsv1.GetAppResponse{App: appPB(a)}, nil
}

func (h *appServer) ListApps(ctx context.Context, req *appsv1.ListAppsRequest) (*appsv1.ListAppsResponse, error) {
	list := h.s.svc.ListApps
	if req.GetShared() {
		list = h.s.svc.ListSharedApps
	}
	as, next, err := list(ctx, caller(ctx), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &appsv1.ListAppsResponse{NextPageToken: next, Apps: make([]*appsv1.App, len(as))}
	for i, a := range as {
		resp.Apps[i] = appPB(a)
	}
	return resp, nil
}

func (h *appServer) UpdateApp(ctx context.Context, req *appsv1.UpdateAppRequest) (*appsv1.UpdateAppResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	a, err := h.s.svc.UpdateApp(ctx, caller(ctx), appID, apps.AppPatch{
		Name: req.Name, Description: req.Description, Visibility: apps.Visibility(req.GetVisibility()),
	})
	if err != nil {
		return nil, err
	}
	return &appsv1.UpdateAppResponse{App: appPB(a)}, nil
}

func (h *appServer) DeleteApp(ctx context.Context, req *appsv1.DeleteAppRequest) (*appsv1.DeleteAppResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	if err := h.s.svc.DeleteApp(ctx, caller(ctx), appID); err != nil {
		return nil, err
	}
	return &appsv1.DeleteAppResponse{}, nil
}
