package grpcapi

import (
	"context"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

type promptServer struct {
	appsv1.UnimplementedPromptServiceServer
	s *Server
}

func (h *promptServer) AddPrompt(ctx context.Context, req *appsv1.AddPromptRequest) (*appsv1.AddPromptResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	p, names, err := h.s.svc.AddPrompt(ctx, caller(ctx), appID, apps.PromptKind(req.GetKind()), req.GetText())
	if err != nil {
		return nil, err
	}
	return &appsv1.AddPromptResponse{Prompt: promptPB(p), SecretsExtracted: names}, nil
}

func (h *promptServer) ListPrompts(ctx context.Context, req *appsv1.ListPromptsRequest) (*appsv1.ListPromptsResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	ps, next, err := h.s.svc.ListPrompts(ctx, caller(ctx), appID, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &appsv1.ListPromptsResponse{NextPageToken: next, Prompts: make([]*appsv1.Prompt, len(ps))}
	for i, p := range ps {
		resp.Prompts[i] = promptPB(p)
	}
	return resp, nil
}

func (h *promptServer) ListPromptReads(ctx context.Context, req *appsv1.ListPromptReadsRequest) (*appsv1.ListPromptReadsResponse, error) {
	appID, err := id("app_id", req.GetAppId())
	if err != nil {
		return nil, err
	}
	reads, next, err := h.s.svc.ListPromptReads(ctx, caller(ctx), appID, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	resp := &appsv1.ListPromptReadsResponse{NextPageToken: next, Reads: make([]*appsv1.PromptRead, len(reads))}
	for i, r := range reads {
		resp.Reads[i] = &appsv1.PromptRead{ReadId: r.ID.String(), Purpose: appsv1.PromptReadPurpose(r.Purpose),
			ReaderOwnerId: r.Reader.String(), Workload: r.Workload,
			PromptCount: int32(r.PromptCount), ReadTime: ts(r.Time)}
	}
	return resp, nil
}
