package interceptors

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/errmap"
)

// panicError describes a recovered panic for the log. The panic value's text is kept only
// for runtime errors (nil dereference, index out of range): any other value could be built
// from request data, including a secret, so only its type is logged.
type panicError struct {
	value string
	stack []byte
}

func (p *panicError) Error() string { return "panic: " + p.value + "\n" + string(p.stack) }

func newPanicError(v any) error {
	desc := fmt.Sprintf("value of type %T", v)
	if re, ok := v.(runtime.Error); ok {
		desc = re.Error()
	}
	return &panicError{value: desc, stack: debug.Stack()}
}

func recovery(mapper errmap.Mapper) Named {
	return Named{
		Name: "recovery",
		Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
			defer func() {
				if v := recover(); v != nil {
					resp, err = nil, mapper.Internal(ctx, info.FullMethod, newPanicError(v)).Err()
				}
			}()
			return h(ctx, req)
		},
		Stream: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = mapper.Internal(ss.Context(), info.FullMethod, newPanicError(v)).Err()
				}
			}()
			return h(srv, ss)
		},
	}
}
