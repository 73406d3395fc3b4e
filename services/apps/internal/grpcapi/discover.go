package grpcapi

import (
	"context"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
)

type discoverServer struct {
	appsv1.UnimplementedDiscoverServiceServer
	s *Server
}

func (h *discoverServer) PublishApp(ctx context.Context, req *appsv1.PublishAppRequest) (*appsv1.PublishAppResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	l, err := h.s.svc.PublishApp(ctx, caller(ctx), appID)
	if err != nil {
		return nil, err
	}
	return &appsv1.PublishAppResponse{Listing: listingPB(l)}, nil
}

func (h *discoverServer) UnpublishApp(ctx context.Context, req *appsv1.UnpublishAppRequest) (*appsv1.UnpublishAppResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	if err := h.s.svc.UnpublishApp(ctx, caller(ctx), appID); err != nil {
		return nil, err
	}
	return &appsv1.UnpublishAppResponse{}, nil
}

func (h *discoverServer) ListListings(ctx context.Context, req *appsv1.ListListingsRequest) (*appsv1.ListListingsResponse, error) {
	ls, next, err := h.s.svc.ListListings(ctx, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &appsv1.ListListingsResponse{NextPageToken: next, Listings: make([]*appsv1.Listing, len(ls))}
	for i, l := range ls {
		resp.Listings[i] = listingPB(l)
	}
	return resp, nil
}

func (h *discoverServer) GetListing(ctx context.Context, req *appsv1.GetListingRequest) (*appsv1.GetListingResponse, error) {
	lid, err := id("listing_id", req.GetListingId())
	if err != nil {
		return nil, err
	}
	l, err := h.s.svc.GetListing(ctx, lid)
	if err != nil {
		return nil, err
	}
	return &appsv1.GetListingResponse{Listing: listingPB(l)}, nil
}

func (h *discoverServer) GetListingFile(ctx context.Context, req *appsv1.GetListingFileRequest) (*appsv1.GetListingFileResponse, error) {
	lid, err := id("listing_id", req.GetListingId())
	if err != nil {
		return nil, err
	}
	f, err := h.s.svc.GetListingFile(ctx, lid, req.GetPath())
	if err != nil {
		return nil, err
	}
	return &appsv1.GetListingFileResponse{File: filePB(f)}, nil
}

func (h *discoverServer) RemixListing(ctx context.Context, req *appsv1.RemixListingRequest) (*appsv1.RemixListingResponse, error) {
	lid, err := id("listing_id", req.GetListingId())
	if err != nil {
		return nil, err
	}
	a, err := h.s.svc.RemixListing(ctx, caller(ctx), lid, req.GetName())
	if err != nil {
		return nil, err
	}
	return &appsv1.RemixListingResponse{App: appPB(a)}, nil
}
