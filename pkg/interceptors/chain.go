// Package interceptors holds the gRPC interceptors every server and client of the suite runs,
// in one documented order. The order is important and a test asserts it:
//
//  1. recovery      - a panic becomes a masked Internal error with an error ID (outermost, so
//     a panic anywhere below is caught).
//  2. logging       - one access log line per call, with code, duration, the verified workload
//     and owner (filled in by the layers below), never the payload.
//  3. errors        - the one mapping of domain, Postgres and downstream errors to gRPC
//     statuses (package errmap); Internal is masked with an ID and logged here.
//  4. authorization - the caller's mTLS workload identity must be listed for the method in the
//     service's workload table (package authz); everything else is PermissionDenied.
//  5. owner         - the owner asserted in metadata is accepted only from a caller the table
//     lets assert one; owner methods without a verified owner are Unauthenticated; a tenant
//     homed in another region is FailedPrecondition naming its home region.
//  6. validation    - protovalidate rules of the request message (InvalidArgument with field
//     violations). Last, so an unauthenticated caller learns nothing from validation.
//
// Client interceptors forward only the allowlisted reserved keys (owner.ForwardedKeys), taken
// from verified context values, never copied from incoming metadata.
package interceptors

import (
	"context"
	"log/slog"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/errmap"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Config is what the server chain needs.
type Config struct {
	Logger *slog.Logger
	// Table is the service's workload table (with the standard services added).
	Table authz.Table
	// Region is the region this instance serves.
	Region owner.Region
	// Validator checks request messages; nil builds a default protovalidate validator.
	Validator protovalidate.Validator
}

// Named is one interceptor of the server chain with its name.
type Named struct {
	Name   string
	Unary  grpc.UnaryServerInterceptor
	Stream grpc.StreamServerInterceptor
}

// ServerChain returns the server interceptors in their order (see the package doc).
func ServerChain(cfg Config) ([]Named, error) {
	v := cfg.Validator
	if v == nil {
		var err error
		if v, err = protovalidate.New(); err != nil {
			return nil, err
		}
	}
	mapper := errmap.Mapper{Logger: cfg.Logger}
	return []Named{
		recovery(mapper),
		logging(cfg.Logger),
		errorMapping(mapper),
		authorization(cfg.Table),
		ownerExtraction(cfg.Table, cfg.Region),
		validation(v),
	}, nil
}

// ServerOptions turns the chain into grpc.ServerOptions.
func ServerOptions(chain []Named) []grpc.ServerOption {
	unary := make([]grpc.UnaryServerInterceptor, 0, len(chain))
	stream := make([]grpc.StreamServerInterceptor, 0, len(chain))
	for _, n := range chain {
		unary = append(unary, n.Unary)
		stream = append(stream, n.Stream)
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...)}
}

// ClientOptions returns the dial options with the client interceptors.
func ClientOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(forwardUnary),
		grpc.WithChainStreamInterceptor(forwardStream),
	}
}

// wrappedStream replaces the context of a server stream.
type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func withContext(ss grpc.ServerStream, ctx context.Context) grpc.ServerStream {
	if ctx == ss.Context() {
		return ss
	}
	return &wrappedStream{ServerStream: ss, ctx: ctx}
}
