// Package tenant is the apps service's client of the tenant service: the owner's plan (for
// the studio-only collaborator feature) and the resolution of an invitee's email to an
// active tenant.
package tenant

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forgeapps/backbone/pkg/fault"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

// Client implements apps.Tenants.
type Client struct {
	accounts tenantv1.AccountServiceClient
	admin    tenantv1.TenantAdminServiceClient
	region   owner.Region
}

// New returns a client over a connection to the tenant service.
func New(cc grpc.ClientConnInterface, region owner.Region) *Client {
	return &Client{accounts: tenantv1.NewAccountServiceClient(cc), admin: tenantv1.NewTenantAdminServiceClient(cc), region: region}
}

var _ apps.Tenants = (*Client)(nil)

// Plan reads the owner's plan from their account, acting for the owner.
func (c *Client) Plan(ctx context.Context, o owner.ID) (apps.Plan, error) {
	// The session of the request is the edge's business; it does not travel to the tenant.
	ctx = owner.WithSessionID(owner.NewContext(ctx, owner.Owner{ID: o, HomeRegion: c.region}), "")
	resp, err := c.accounts.GetAccount(ctx, &tenantv1.GetAccountRequest{})
	if err != nil {
		return apps.PlanUnspecified, mapErr("get account", err)
	}
	return apps.Plan(resp.GetAccount().GetPlan()), nil
}

// ResolveEmail finds the active tenant that signed in with email (a system call: it names no
// owner of its own).
func (c *Client) ResolveEmail(ctx context.Context, email string) (owner.ID, error) {
	// The owner context of the inviting request must not travel on a system method (the
	// tenant service refuses an owner there): the zero owner forwards none.
	resp, err := c.admin.ResolveEmail(owner.NewContext(ctx, owner.Owner{}), &tenantv1.ResolveEmailRequest{Email: email})
	if status.Code(err) == codes.NotFound {
		return owner.ID{}, fault.NotFound("no account that can be invited has this email")
	}
	if err != nil {
		return owner.ID{}, mapErr("resolve email", err)
	}
	id, err := owner.Parse(resp.GetOwnerId())
	if err != nil {
		return owner.ID{}, fmt.Errorf("tenant resolve email: %w", err)
	}
	return id, nil
}

func mapErr(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("tenant %s: %w", op, err)
	}
	opaque := errors.New("tenant " + op + ": " + st.Code().String() + ": " + st.Message())
	if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded {
		return fault.Unavailable("the account service is unavailable, retry later").Wrap(opaque)
	}
	return opaque
}
