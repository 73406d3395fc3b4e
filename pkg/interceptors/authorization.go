package interceptors

import (
	"context"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/workload"
)

type decisionKey struct{}

func authorize(ctx context.Context, table authz.Table, method string) (context.Context, error) {
	caller, err := workload.FromPeer(ctx)
	if err != nil {
		// Unreachable with the suite's server credentials (the handshake already failed), kept
		// so that a server built without them still refuses.
		return nil, fault.Unauthenticated("no verified workload identity").Wrap(err)
	}
	callInfoFrom(ctx).set(func(c *callInfo) { c.workload = caller.String() })
	d, err := table.Authorize(method, caller)
	if err != nil {
		return nil, fault.PermissionDenied("workload %s may not call %s", caller, method).Wrap(err)
	}
	ctx = workload.NewContext(ctx, caller)
	return context.WithValue(ctx, decisionKey{}, d), nil
}

func authorization(table authz.Table) Named {
	return Named{
		Name: "authorization",
		Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := authorize(ctx, table, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		},
		Stream: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := authorize(ss.Context(), table, info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, withContext(ss, ctx))
		},
	}
}
