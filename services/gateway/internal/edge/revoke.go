package edge

import (
	"context"

	"google.golang.org/grpc"

	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Dropper forgets cached credentials (auth.Cache).
type Dropper interface {
	DropSession(sessionID string)
	DropOwner(id owner.ID)
}

// WatchRevocations wraps a backend connection so that a revocation or a status change made
// through this edge empties this edge's cache as soon as the service confirms it, before the
// response reaches the client: the replica that handled a sign-out, a DELETE
// /v1/sessions/{id}, a revokeAll or a deletion request never honours the old answer again.
// Other replicas learn it from the tenant.sessions.revoked and tenant.account.status_changed
// events.
func WatchRevocations(cc grpc.ClientConnInterface, cache Dropper) grpc.ClientConnInterface {
	return &revokingConn{ClientConnInterface: cc, cache: cache}
}

type revokingConn struct {
	grpc.ClientConnInterface
	cache Dropper
}

func (c *revokingConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if err := c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...); err != nil {
		return err
	}
	switch method {
	case tenantv1.SessionService_RevokeSession_FullMethodName:
		if req, ok := args.(*tenantv1.RevokeSessionRequest); ok {
			c.cache.DropSession(req.GetSessionId())
		}
	case tenantv1.SessionService_RevokeAllSessions_FullMethodName,
		lifecyclev1.DeletionService_RequestDeletion_FullMethodName,
		lifecyclev1.DeletionService_CancelDeletion_FullMethodName:
		if o, ok := owner.FromContext(ctx); ok {
			c.cache.DropOwner(o.ID)
		}
	}
	return nil
}
