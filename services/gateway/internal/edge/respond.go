package edge

import (
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// jsonOut marshals what the edge writes itself exactly as grpc-gateway writes the services'
// answers (lowerCamelCase, unpopulated fields present), so a client sees one format.
var jsonOut = protojson.MarshalOptions{EmitUnpopulated: true}

// writeStatus answers with a google.rpc.Status body and the given HTTP status.
func writeStatus(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	writeProto(w, httpStatus, &spb.Status{Code: int32(code), Message: msg})
}

// writeError answers with err's gRPC status (an Internal one when err is not a status) and
// the HTTP status grpc-gateway maps its code to.
func writeError(w http.ResponseWriter, err error) {
	s := status.Convert(err)
	if s.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="forge"`)
	}
	writeProto(w, runtime.HTTPStatusFromCode(s.Code()), s.Proto())
}

func writeProto(w http.ResponseWriter, httpStatus int, m proto.Message) {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		httpStatus = http.StatusInternalServerError
		b = []byte(`{"code":13,"message":"internal error","details":[]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(httpStatus)
	_, _ = w.Write(b)
}

// The edge's own refusals.

func unauthenticated(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="forge"`)
	writeStatus(w, http.StatusUnauthorized, codes.Unauthenticated, msg)
}

func tooManyRequests(w http.ResponseWriter, retryAfter time.Duration, msg string) {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	writeStatus(w, http.StatusTooManyRequests, codes.ResourceExhausted, msg)
}

func tooLarge(w http.ResponseWriter, limit int64) {
	writeStatus(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
		"request body too large: the limit of this route is "+strconv.FormatInt(limit, 10)+" bytes")
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeStatus(w, http.StatusMethodNotAllowed, codes.Unimplemented, "method not allowed")
}
