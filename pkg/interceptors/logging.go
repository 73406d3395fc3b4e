package interceptors

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// callInfo collects what the inner interceptors learn about a call (the verified workload
// and owner) so the access log, which wraps them, can report it when the call ends.
type callInfo struct {
	mu        sync.Mutex
	workload  string
	owner     string
	requestID string
}

type callInfoKey struct{}

func callInfoFrom(ctx context.Context) *callInfo {
	ci, _ := ctx.Value(callInfoKey{}).(*callInfo)
	return ci
}

func (c *callInfo) set(f func(*callInfo)) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func logging(logger *slog.Logger) Named {
	report := func(ctx context.Context, ci *callInfo, method string, start time.Time, err error) {
		if logger == nil {
			return
		}
		code := status.Code(err)
		level := slog.LevelInfo
		switch code {
		case codes.OK, codes.Canceled, codes.NotFound, codes.AlreadyExists, codes.InvalidArgument,
			codes.FailedPrecondition, codes.Aborted, codes.OutOfRange:
		case codes.Internal, codes.Unknown, codes.DataLoss:
			level = slog.LevelError
		default:
			level = slog.LevelWarn
		}
		ci.mu.Lock()
		attrs := []slog.Attr{
			slog.String("grpc.method", method),
			slog.String("grpc.code", code.String()),
			slog.Duration("duration", time.Since(start)),
			slog.String("peer.workload", ci.workload),
			slog.String("owner_id", ci.owner),
			slog.String("request_id", ci.requestID),
		}
		ci.mu.Unlock()
		// The status message is not logged: it may echo request content. Internal errors were
		// logged in full, with their ID, by the error mapping layer.
		logger.LogAttrs(ctx, level, "grpc call", attrs...)
	}
	return Named{
		Name: "logging",
		Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			ci := &callInfo{}
			resp, err := h(context.WithValue(ctx, callInfoKey{}, ci), req)
			report(ctx, ci, info.FullMethod, start, err)
			return resp, err
		},
		Stream: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			ci := &callInfo{}
			err := h(srv, withContext(ss, context.WithValue(ss.Context(), callInfoKey{}, ci)))
			report(ss.Context(), ci, info.FullMethod, start, err)
			return err
		},
	}
}
