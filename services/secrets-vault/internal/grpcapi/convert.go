package grpcapi

import (
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/fault"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// parseUUID reads an ID the validation layer already checked as a UUID.
func parseUUID(field, s string) (uuid.UUID, error) {
	u, err := uuid.Parse(s)
	if err != nil || u == uuid.Nil {
		return uuid.Nil, fault.InvalidField(field, "a UUID")
	}
	return u, nil
}

func injectionFromProto(in *vaultv1.Injection) vault.Injection {
	out := vault.Injection{HeaderName: in.GetHeaderName(), Prefix: in.GetPrefix(), QueryParam: in.GetQueryParam()}
	switch in.GetKind() {
	case vaultv1.Injection_KIND_HEADER:
		out.Kind = vault.InjectHeader
	case vaultv1.Injection_KIND_QUERY:
		out.Kind = vault.InjectQuery
	}
	return out
}

func injectionToProto(in vault.Injection) *vaultv1.Injection {
	out := &vaultv1.Injection{HeaderName: in.HeaderName, Prefix: in.Prefix, QueryParam: in.QueryParam}
	switch in.Kind {
	case vault.InjectHeader:
		out.Kind = vaultv1.Injection_KIND_HEADER
	case vault.InjectQuery:
		out.Kind = vaultv1.Injection_KIND_QUERY
	}
	return out
}

func secretToProto(s vault.Secret) *vaultv1.Secret {
	return &vaultv1.Secret{
		AppId:        s.AppID.String(),
		Name:         s.Name,
		UpstreamHost: s.UpstreamHost,
		Injection:    injectionToProto(s.Injection),
		CreateTime:   timestamppb.New(s.Created),
		RotateTime:   timestamppb.New(s.Rotated),
	}
}

func bindingFromProto(b *vaultv1.Binding) vault.Binding {
	return vault.Binding{Object: b.GetObject(), Field: b.GetField()}
}
