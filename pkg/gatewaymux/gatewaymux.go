// Package gatewaymux holds the grpc-gateway settings the whole suite's JSON API uses, so that
// every service's routes behave the same at the edge: lowerCamelCase JSON, unknown fields
// refused, errors as google.rpc.Status JSON with the matching HTTP status, raw bytes for
// google.api.HttpBody responses, a CORS allowlist, and, most importantly, a header matcher that
// forwards NO client header into gRPC metadata.
//
// grpc-gateway forwards `Grpc-Metadata-*` headers (and a few permanent ones) by default; a
// client could then send `Grpc-Metadata-X-Forge-Owner-Id` and hope a service believes it. Here
// nothing is forwarded: the edge authenticates the person itself and puts the verified owner
// in the request context, from which the client interceptors set the reserved keys.
package gatewaymux

import (
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/rs/cors"
	"google.golang.org/protobuf/encoding/protojson"
)

// New returns the ServeMux for the edge. extra options are appended (for example
// runtime.WithForwardResponseOption from the gateway service).
func New(extra ...runtime.ServeMuxOption) *runtime.ServeMux {
	json := &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
		// Unknown fields are an error, so a client-supplied "owner_id" in a body is refused
		// instead of silently dropped.
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
	opts := []runtime.ServeMuxOption{
		runtime.WithIncomingHeaderMatcher(DropAllHeaders),
		runtime.WithOutgoingHeaderMatcher(DropAllHeaders),
		runtime.WithOutgoingTrailerMatcher(DropAllHeaders),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: json}),
		runtime.WithErrorHandler(runtime.DefaultHTTPErrorHandler),
		runtime.WithDisablePathLengthFallback(),
		// grpc-gateway keeps the query parser process-wide; every edge mux uses the strict one.
		runtime.SetQueryParameterParser(&strictQueryParser{}),
	}
	return runtime.NewServeMux(append(opts, extra...)...)
}

// DropAllHeaders is the header matcher of the edge: no HTTP header becomes gRPC metadata and
// no gRPC metadata becomes an HTTP header.
func DropAllHeaders(string) (string, bool) { return "", false }

// CORS allows cross-origin requests from the console origins only (never a sandbox app
// origin), with credentials, for the methods and headers the console uses.
func CORS(allowedOrigins []string, next http.Handler) http.Handler {
	return cors.New(cors.Options{
		AllowedOrigins:   allowedOrigins,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "X-Request-Id"},
		ExposedHeaders:   []string{"X-Request-Id", "Retry-After"},
		AllowCredentials: true,
		MaxAge:           600,
	}).Handler(next)
}
