package sandboxtest

import "google.golang.org/grpc"

type grpcRegistrar = grpc.ServiceRegistrar
