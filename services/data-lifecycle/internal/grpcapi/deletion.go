package grpcapi

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/fault"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"
)

type deletionServer struct {
	lifecyclev1.UnimplementedDeletionServiceServer
	w *workflow.Workflows
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func (s *deletionServer) RequestDeletion(ctx context.Context, req *lifecyclev1.RequestDeletionRequest) (*lifecyclev1.RequestDeletionResponse, error) {
	o, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetConfirm() != lifecycle.ConfirmPhrase {
		return nil, fault.InvalidField("confirm", "must be exactly \""+lifecycle.ConfirmPhrase+"\"")
	}
	d, tok, err := s.w.RequestDeletion(ctx, o)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.RequestDeletionResponse{Deletion: deletionPB(d), ReceiptToken: tok.Reveal()}, nil
}

func (s *deletionServer) GetDeletion(ctx context.Context, _ *lifecyclev1.GetDeletionRequest) (*lifecyclev1.GetDeletionResponse, error) {
	o, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.w.Store().OpenDeletion(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.GetDeletionResponse{Deletion: deletionPB(d)}, nil
}

func (s *deletionServer) CancelDeletion(ctx context.Context, _ *lifecyclev1.CancelDeletionRequest) (*lifecyclev1.CancelDeletionResponse, error) {
	o, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.w.CancelDeletion(ctx, o)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CancelDeletionResponse{Deletion: deletionPB(d)}, nil
}

func (s *deletionServer) GetDeletionByReceipt(ctx context.Context, req *lifecyclev1.GetDeletionByReceiptRequest) (*lifecyclev1.GetDeletionByReceiptResponse, error) {
	hash, err := lifecycle.ParseToken(lifecycle.ReceiptPrefix, req.GetReceiptToken())
	if err != nil {
		return nil, fault.NotFound("receipt not found")
	}
	d, err := s.w.Store().DeletionByReceipt(ctx, hash)
	if err != nil {
		return nil, err
	}
	out := &lifecyclev1.GetDeletionByReceiptResponse{Deletion: deletionPB(d)}
	if d.Certificate != nil {
		out.Certificate = &lifecyclev1.DeletionCertificate{
			Payload: d.Certificate.Payload, Signature: d.Certificate.Signature, KeyId: d.Certificate.KeyID,
		}
	}
	return out, nil
}
