package interceptors

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/forgeapps/backbone/pkg/owner"
)

// outgoing rebuilds the outgoing metadata: every reserved key is removed, whoever put it
// there, and the allowlisted ones are set from verified context values only.
func outgoing(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	for k := range md {
		if owner.IsReserved(k) {
			delete(md, k)
		}
	}
	if o, ok := owner.FromContext(ctx); ok {
		md.Set(owner.MDOwnerID, o.ID.String())
		md.Set(owner.MDOwnerRegion, o.HomeRegion.String())
		if sid, ok := owner.SessionIDFromContext(ctx); ok {
			md.Set(owner.MDSessionID, sid)
		}
	}
	if rid, ok := owner.RequestIDFromContext(ctx); ok {
		md.Set(owner.MDRequestID, rid)
	}
	return metadata.NewOutgoingContext(ctx, md)
}

func forwardUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(outgoing(ctx), method, req, reply, cc, opts...)
}

func forwardStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(outgoing(ctx), desc, cc, method, opts...)
}
