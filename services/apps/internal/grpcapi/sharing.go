package grpcapi

import (
	"context"
	"time"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

type sharingServer struct {
	appsv1.UnimplementedSharingServiceServer
	s *Server
}

func (h *sharingServer) CreateShareLink(ctx context.Context, req *appsv1.CreateShareLinkRequest) (*appsv1.CreateShareLinkResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	l, tok, url, err := h.s.svc.CreateShareLink(ctx, caller(ctx), appID, time.Duration(req.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, err
	}
	return &appsv1.CreateShareLinkResponse{
		Link:  &appsv1.ShareLink{LinkId: l.ID.String(), CreateTime: ts(l.Created), ExpireTime: ts(l.Expires)},
		Token: tok.Reveal(), Url: url,
	}, nil
}

func (h *sharingServer) ListShareLinks(ctx context.Context, req *appsv1.ListShareLinksRequest) (*appsv1.ListShareLinksResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	ls, err := h.s.svc.ListShareLinks(ctx, caller(ctx), appID)
	if err != nil {
		return nil, err
	}
	resp := &appsv1.ListShareLinksResponse{Links: make([]*appsv1.ShareLink, len(ls))}
	for i, l := range ls {
		resp.Links[i] = &appsv1.ShareLink{LinkId: l.ID.String(), CreateTime: ts(l.Created), ExpireTime: ts(l.Expires)}
	}
	return resp, nil
}

func (h *sharingServer) RevokeShareLink(ctx context.Context, req *appsv1.RevokeShareLinkRequest) (*appsv1.RevokeShareLinkResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	linkID, err := id("link_id", req.GetLinkId())
	if err != nil {
		return nil, err
	}
	if err := h.s.svc.RevokeShareLink(ctx, caller(ctx), appID, linkID); err != nil {
		return nil, err
	}
	return &appsv1.RevokeShareLinkResponse{}, nil
}

func collaboratorPB(c apps.Collaborator) *appsv1.Collaborator {
	return &appsv1.Collaborator{CollaboratorId: c.ID.String(), Email: c.Email, Role: appsv1.Role(c.Role), CreateTime: ts(c.Created)}
}

func (h *sharingServer) AddCollaborator(ctx context.Context, req *appsv1.AddCollaboratorRequest) (*appsv1.AddCollaboratorResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	c, err := h.s.svc.AddCollaborator(ctx, caller(ctx), appID, req.GetEmail(), apps.Role(req.GetRole()))
	if err != nil {
		return nil, err
	}
	return &appsv1.AddCollaboratorResponse{Collaborator: collaboratorPB(c)}, nil
}

func (h *sharingServer) ListCollaborators(ctx context.Context, req *appsv1.ListCollaboratorsRequest) (*appsv1.ListCollaboratorsResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	cs, err := h.s.svc.ListCollaborators(ctx, caller(ctx), appID)
	if err != nil {
		return nil, err
	}
	resp := &appsv1.ListCollaboratorsResponse{Collaborators: make([]*appsv1.Collaborator, len(cs))}
	for i, c := range cs {
		resp.Collaborators[i] = collaboratorPB(c)
	}
	return resp, nil
}

func (h *sharingServer) RemoveCollaborator(ctx context.Context, req *appsv1.RemoveCollaboratorRequest) (*appsv1.RemoveCollaboratorResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	colID, err := id("collaborator_id", req.GetCollaboratorId())
	if err != nil {
		return nil, err
	}
	if err := h.s.svc.RemoveCollaborator(ctx, caller(ctx), appID, colID); err != nil {
		return nil, err
	}
	return &appsv1.RemoveCollaboratorResponse{}, nil
}
