package interceptors

import (
	"buf.build/go/protovalidate"
	pvmw "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/protovalidate"
)

func validation(v protovalidate.Validator) Named {
	return Named{
		Name:   "validation",
		Unary:  pvmw.UnaryServerInterceptor(v),
		Stream: pvmw.StreamServerInterceptor(v),
	}
}
