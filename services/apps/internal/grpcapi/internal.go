package grpcapi

import (
	"context"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

type internalServer struct {
	appsv1.UnimplementedAppsInternalServiceServer
	s *Server
}

func (h *internalServer) GetServableApp(ctx context.Context, req *appsv1.GetServableAppRequest) (*appsv1.GetServableAppResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	sv, err := h.s.svc.GetServableApp(ctx, appID)
	if err != nil {
		return nil, err
	}
	return &appsv1.GetServableAppResponse{OwnerId: sv.Owner.String(), Visibility: appsv1.Visibility(sv.Visibility),
		Version: sv.Version, Files: filesPB(sv.Files)}, nil
}

func (h *internalServer) CheckViewer(ctx context.Context, req *appsv1.CheckViewerRequest) (*appsv1.CheckViewerResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	viewer, err := ownerID(req.GetViewerOwnerId())
	if err != nil {
		return nil, err
	}
	role, o, err := h.s.svc.CheckViewer(ctx, appID, viewer)
	if err != nil {
		return nil, err
	}
	return &appsv1.CheckViewerResponse{Role: appsv1.Role(role), OwnerId: o.String()}, nil
}

func (h *internalServer) CheckShareToken(ctx context.Context, req *appsv1.CheckShareTokenRequest) (*appsv1.CheckShareTokenResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	exp, o, err := h.s.svc.CheckShareToken(ctx, appID, req.GetToken())
	if err != nil {
		return nil, err
	}
	return &appsv1.CheckShareTokenResponse{ExpireTime: ts(exp), OwnerId: o.String()}, nil
}

func (h *internalServer) ExportOwner(req *appsv1.ExportOwnerRequest, stream appsv1.AppsInternalService_ExportOwnerServer) error {
	o, err := ownerID(req.GetOwnerId())
	if err != nil {
		return err
	}
	return h.s.svc.ExportOwner(stream.Context(), o, func(it apps.ExportItem) error {
		var msg *appsv1.ExportOwnerResponse
		switch {
		case it.App != nil:
			msg = &appsv1.ExportOwnerResponse{Item: &appsv1.ExportOwnerResponse_App{App: appPB(*it.App)}}
		case it.Prompt != nil:
			msg = &appsv1.ExportOwnerResponse{Item: &appsv1.ExportOwnerResponse_Prompt{Prompt: &appsv1.ExportedPrompt{
				AppId: it.AppID.String(), Prompt: promptPB(*it.Prompt)}}}
		case it.Reference != nil:
			msg = &appsv1.ExportOwnerResponse{Item: &appsv1.ExportOwnerResponse_Reference{Reference: &appsv1.ExportedReference{
				AppId: it.AppID.String(), Reference: referencePB(*it.Reference), Content: it.Content}}}
		case it.File != nil:
			msg = &appsv1.ExportOwnerResponse{Item: &appsv1.ExportOwnerResponse_File{File: &appsv1.ExportedFile{
				AppId: it.AppID.String(), Version: it.Version, File: filePB(*it.File)}}}
		default:
			return nil
		}
		return stream.Send(msg)
	})
}

func (h *internalServer) DisableOwner(ctx context.Context, req *appsv1.DisableOwnerRequest) (*appsv1.DisableOwnerResponse, error) {
	o, err := ownerID(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	listings, links, err := h.s.svc.DisableOwner(ctx, o)
	if err != nil {
		return nil, err
	}
	return &appsv1.DisableOwnerResponse{ListingsRemoved: int32(listings), LinksRevoked: int32(links)}, nil
}

func (h *internalServer) RestoreOwner(ctx context.Context, req *appsv1.RestoreOwnerRequest) (*appsv1.RestoreOwnerResponse, error) {
	o, err := ownerID(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	if err := h.s.svc.RestoreOwner(ctx, o); err != nil {
		return nil, err
	}
	return &appsv1.RestoreOwnerResponse{}, nil
}

func (h *internalServer) PurgeOwner(ctx context.Context, req *appsv1.PurgeOwnerRequest) (*appsv1.PurgeOwnerResponse, error) {
	o, err := ownerID(req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	n, err := h.s.svc.PurgeOwner(ctx, o, int(req.GetBatchSize()))
	if err != nil {
		return nil, err
	}
	return &appsv1.PurgeOwnerResponse{RowsDeleted: n.Rows, ObjectsDeleted: n.Objects, Done: n.Done}, nil
}
