package interceptors

import (
	"context"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/errmap"
)

func errorMapping(mapper errmap.Mapper) Named {
	return Named{
		Name: "errors",
		Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			if err != nil {
				return nil, mapper.ToStatus(ctx, info.FullMethod, err)
			}
			return resp, nil
		},
		Stream: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return mapper.ToStatus(ss.Context(), info.FullMethod, h(srv, ss))
		},
	}
}
