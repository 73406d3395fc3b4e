package grpcapi

import (
	"context"
	"errors"
	"io"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/api/httpbody"

	"github.com/forgeapps/backbone/pkg/fault"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"
)

type exportServer struct {
	lifecyclev1.UnimplementedExportServiceServer
	w *workflow.Workflows
}

// caller is the verified owner; the interceptors guarantee it on owner methods.
func caller(ctx context.Context) (owner.Owner, error) {
	o, ok := owner.FromContext(ctx)
	if !ok {
		return owner.Owner{}, fault.Unauthenticated("no verified owner")
	}
	return o, nil
}

func exportID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, fault.InvalidField("export_id", "must be a UUID")
	}
	return id, nil
}

func (s *exportServer) CreateExport(ctx context.Context, _ *lifecyclev1.CreateExportRequest) (*lifecyclev1.CreateExportResponse, error) {
	o, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.w.Store().CreateExport(ctx, o, s.w.Clock().Now())
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CreateExportResponse{Export: exportPB(e)}, nil
}

func (s *exportServer) GetExport(ctx context.Context, req *lifecyclev1.GetExportRequest) (*lifecyclev1.GetExportResponse, error) {
	o, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := exportID(req.GetExportId())
	if err != nil {
		return nil, err
	}
	e, err := s.w.Store().GetExport(ctx, o.ID, id)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.GetExportResponse{Export: exportPB(e)}, nil
}

func (s *exportServer) ListExports(ctx context.Context, _ *lifecyclev1.ListExportsRequest) (*lifecyclev1.ListExportsResponse, error) {
	o, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	es, err := s.w.Store().ListExports(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	out := &lifecyclev1.ListExportsResponse{}
	for _, e := range es {
		out.Exports = append(out.Exports, exportPB(e))
	}
	return out, nil
}

func (s *exportServer) CancelExport(ctx context.Context, req *lifecyclev1.CancelExportRequest) (*lifecyclev1.CancelExportResponse, error) {
	o, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := exportID(req.GetExportId())
	if err != nil {
		return nil, err
	}
	e, err := s.w.Store().CancelExport(ctx, o.ID, id, s.w.Clock().Now())
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CancelExportResponse{Export: exportPB(e)}, nil
}

func (s *exportServer) CreateDownloadLink(ctx context.Context, req *lifecyclev1.CreateDownloadLinkRequest) (*lifecyclev1.CreateDownloadLinkResponse, error) {
	o, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := exportID(req.GetExportId())
	if err != nil {
		return nil, err
	}
	tok, hash, err := lifecycle.NewToken(lifecycle.DownloadPrefix)
	if err != nil {
		return nil, err
	}
	expire, err := s.w.Store().CreateDownloadLink(ctx, o.ID, id, hash, s.w.Clock().Now())
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CreateDownloadLinkResponse{
		Url:        "/v1/exports/" + id.String() + "/archive?token=" + tok.Reveal(),
		ExpireTime: timestamp(expire),
	}, nil
}

// downloadChunk is the size of each HttpBody message (well under gRPC's 4 MiB limit).
const downloadChunk = 256 << 10

func (s *exportServer) DownloadExport(req *lifecyclev1.DownloadExportRequest, stream lifecyclev1.ExportService_DownloadExportServer) error {
	ctx := stream.Context()
	o, err := caller(ctx)
	if err != nil {
		return err
	}
	id, err := exportID(req.GetExportId())
	if err != nil {
		return err
	}
	hash, err := lifecycle.ParseToken(lifecycle.DownloadPrefix, req.GetToken())
	if err != nil {
		return fault.NotFound("download link not found or already used")
	}
	e, err := s.w.Store().ConsumeDownloadLink(ctx, o.ID, id, hash, s.w.Clock().Now())
	if err != nil {
		return err
	}
	r, err := s.w.OpenArchive(ctx, o, e)
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, downloadChunk)
	first := true
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || first {
			msg := &httpbody.HttpBody{Data: buf[:n]}
			if first {
				msg.ContentType = "application/zip"
				first = false
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			return nil
		}
		if rerr != nil {
			// The bytes already sent cannot be taken back; the stream ends in an error, so
			// the client never takes a broken archive for a whole one.
			return rerr
		}
	}
}
