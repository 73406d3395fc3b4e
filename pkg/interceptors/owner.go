package interceptors

import (
	"context"
	"regexp"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// ReasonWrongRegion is the ErrorInfo reason of a request for a tenant homed in another
// region; its metadata "home_region" names where to send it.
const ReasonWrongRegion = "WRONG_REGION"

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func extractOwner(ctx context.Context, method string, region owner.Region) (context.Context, error) {
	d, ok := ctx.Value(decisionKey{}).(authz.Decision)
	if !ok {
		return nil, fault.PermissionDenied("call was not authorized")
	}
	md, _ := metadata.FromIncomingContext(ctx)

	if rid := md.Get(owner.MDRequestID); len(rid) == 1 && requestIDRE.MatchString(rid[0]) {
		ctx = owner.WithRequestID(ctx, rid[0])
		callInfoFrom(ctx).set(func(c *callInfo) { c.requestID = rid[0] })
	}

	ids := md.Get(owner.MDOwnerID)
	if len(ids) == 0 {
		if d.Rule.Mode == authz.OwnerRequired {
			return nil, fault.Unauthenticated("no verified owner")
		}
		return ctx, nil
	}
	if !d.MayAssertOwner {
		return nil, fault.PermissionDenied("this caller may not assert an owner on %s", method)
	}
	regions := md.Get(owner.MDOwnerRegion)
	if len(ids) != 1 || len(regions) != 1 {
		return nil, fault.Unauthenticated("malformed owner context")
	}
	id, err := owner.Parse(ids[0])
	if err != nil {
		return nil, fault.Unauthenticated("malformed owner context").Wrap(err)
	}
	home, err := owner.ParseRegion(regions[0])
	if err != nil {
		return nil, fault.Unauthenticated("malformed owner context").Wrap(err)
	}
	if home != region {
		return nil, fault.FailedPrecondition("tenant is homed in %s; this is %s", home, region).
			WithReason(ReasonWrongRegion, map[string]string{"home_region": home.String()})
	}
	ctx = owner.NewContext(ctx, owner.Owner{ID: id, HomeRegion: home})
	if sids := md.Get(owner.MDSessionID); len(sids) == 1 && requestIDRE.MatchString(sids[0]) {
		ctx = owner.WithSessionID(ctx, sids[0])
	}
	callInfoFrom(ctx).set(func(c *callInfo) { c.owner = id.String() })
	return ctx, nil
}

func ownerExtraction(_ authz.Table, region owner.Region) Named {
	return Named{
		Name: "owner",
		Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := extractOwner(ctx, info.FullMethod, region)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		},
		Stream: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := extractOwner(ss.Context(), info.FullMethod, region)
			if err != nil {
				return err
			}
			return h(srv, withContext(ss, ctx))
		},
	}
}
