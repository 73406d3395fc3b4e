// Package gatewaymux holds the grpc-gateway settings the whole suite's JSON API uses, so that
// every service's routes behave the same at the edge: lowerCamelCase JSON, unknown fields
// refused, errors as google.rpc.Status JSON with the matching HTTP status, raw bytes for
// google.api.HttpBody responses, a CORS allowlist, and, most importantly, a header matcher that
// forwards NO client header into gRPC metadata.
//
// grpc-gateway forwards `Grpc-Metadata-*` headers (and a few permanent ones) by default; a
// client could then send `Grpc-Metadata-X-Forge-Owner-Id` and hope a service believes it. Here
// no header goes through the matcher: the edge authenticates the person itself and puts the
// verified owner in the request context, from which the client interceptors set the reserved
// keys. grpc-gateway forwards three headers whatever the matcher says (Authorization, and the
// client's X-Forwarded-For and X-Forwarded-Host prepended to its own); the edge removes them
// with StripClientHeaders after authenticating, so no service ever sees a person's token.
package gatewaymux

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/rs/cors"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
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
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &httpBodyMarshaler{runtime.HTTPBodyMarshaler{Marshaler: json}}),
		runtime.WithErrorHandler(runtime.DefaultHTTPErrorHandler),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithDisablePathLengthFallback(),
		// grpc-gateway keeps the query parser process-wide; every edge mux uses the strict one.
		runtime.SetQueryParameterParser(&strictQueryParser{}),
	}
	return runtime.NewServeMux(append(opts, extra...)...)
}

// httpBodyMarshaler is runtime.HTTPBodyMarshaler with no stream delimiter. grpc-gateway
// writes the marshaler's delimiter after every message of a server stream ("\n" when the
// marshaler names none, as HTTPBodyMarshaler does not): a streamed google.api.HttpBody (an
// export archive) would get a newline inserted after every chunk, and a zip with bytes added
// is corrupt. The suite's only streamed routes return HttpBody, whose chunks are the body
// itself; a streamed JSON route would need its own delimiter and a test of it.
type httpBodyMarshaler struct {
	runtime.HTTPBodyMarshaler
}

// Delimiter implements runtime.Delimited: nothing between the chunks of a stream.
func (*httpBodyMarshaler) Delimiter() []byte { return nil }

// Marshal writes the error of a stream as the google.rpc.Status itself, like every other
// error of the API: grpc-gateway wraps a stream's error in {"error": status}. Before the
// first chunk (a used or unknown download link) that is the whole answer, with the matching
// HTTP status; after it, the download is cut short either way.
func (m *httpBodyMarshaler) Marshal(v any) ([]byte, error) {
	if chunk, ok := v.(map[string]proto.Message); ok && len(chunk) == 1 {
		if st, ok := chunk["error"].(*spb.Status); ok {
			return m.HTTPBodyMarshaler.Marshal(st)
		}
	}
	return m.HTTPBodyMarshaler.Marshal(v)
}

// StripClientHeaders removes what grpc-gateway would forward into gRPC metadata despite the
// drop-all header matcher: Authorization (every service would receive the person's token),
// Cookie, and client-supplied X-Forwarded-For / X-Forwarded-Host. Call it once the request is
// authenticated, before handing it to the mux.
func StripClientHeaders(r *http.Request) {
	for _, k := range []string{"Authorization", "Cookie", "X-Forwarded-For", "X-Forwarded-Host"} {
		r.Header.Del(k)
	}
}

// routingError answers a request no route matches with the HTTP status the router chose:
// grpc-gateway's default turns 405 into Unimplemented and so into 501.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	code := codes.NotFound
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		code = codes.Unimplemented
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, &runtime.HTTPStatusError{
		HTTPStatus: httpStatus, Err: status.Error(code, http.StatusText(httpStatus)),
	})
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
