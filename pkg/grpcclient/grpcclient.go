// Package grpcclient dials other services of the suite: always over mTLS, checking that the
// server is the workload we meant to reach, with the client interceptors that forward the
// owner context from verified values only, and with OpenTelemetry propagation.
package grpcclient

import (
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/forgeapps/backbone/pkg/grpcserver"
	"github.com/forgeapps/backbone/pkg/interceptors"
	"github.com/forgeapps/backbone/pkg/telemetry"
)

// Dial returns a client connection to target (host:port). creds must be the mTLS client
// credentials for the expected server workload (mtls.Source.ClientCredentials(server)).
func Dial(target string, creds credentials.TransportCredentials, tel *telemetry.Providers) (*grpc.ClientConn, error) {
	if creds == nil {
		return nil, fmt.Errorf("grpcclient: dial %s: transport credentials are required", target)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(grpcserver.MaxMessageBytes),
			grpc.MaxCallSendMsgSize(grpcserver.MaxMessageBytes),
		),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, PermitWithoutStream: true}),
	}
	if tel != nil {
		opts = append(opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tel.Tracer),
			otelgrpc.WithMeterProvider(tel.Meter),
			otelgrpc.WithPropagators(tel.Propagator),
		)))
	}
	opts = append(opts, interceptors.ClientOptions()...)
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpcclient: dial %s: %w", target, err)
	}
	return cc, nil
}
