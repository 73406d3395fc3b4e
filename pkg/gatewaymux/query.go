package gatewaymux

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// strictQueryParser refuses query parameters that name no field of the request, as the JSON
// body does for unknown fields: `?owner_id=...` on a route without such a field is a 400, not
// a silently ignored hint that a reader might think was honoured.
type strictQueryParser struct {
	runtime.DefaultQueryParser
}

func (p *strictQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	desc := msg.ProtoReflect().Descriptor()
	for key := range values {
		if !hasFieldPath(desc, strings.Split(key, ".")) {
			return status.Error(codes.InvalidArgument, fmt.Sprintf("unknown query parameter %q", key))
		}
	}
	return p.DefaultQueryParser.Parse(msg, values, filter)
}

func hasFieldPath(desc protoreflect.MessageDescriptor, path []string) bool {
	for i, name := range path {
		f := desc.Fields().ByName(protoreflect.Name(name))
		if f == nil {
			f = desc.Fields().ByJSONName(name)
		}
		if f == nil {
			return false
		}
		if i == len(path)-1 {
			return true
		}
		if f.Message() == nil {
			return false
		}
		desc = f.Message()
	}
	return false
}
