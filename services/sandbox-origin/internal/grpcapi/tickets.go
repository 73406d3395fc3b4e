// Package grpcapi is the sandbox origin's gRPC API: ViewTicketService, which the gateway calls
// for the signed-in person so the console can open a private app on its own origin.
package grpcapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/fault"
	sandboxv1 "github.com/forgeapps/backbone/pkg/gen/forge/sandbox/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/appcache"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
)

// Table is the sandbox origin's workload table: the gateway asks for view tickets for the
// person it authenticated.
func Table() authz.Table {
	return authz.Table{
		sandboxv1.ViewTicketService_IssueViewTicket_FullMethodName: authz.Owner(workload.Gateway),
	}.WithStandardServices()
}

// TicketStore stores issued tickets (as hashes).
type TicketStore interface {
	IssueTicket(ctx context.Context, appOwner owner.ID, hash [sha256.Size]byte, app uuid.UUID, viewer owner.ID, expiry time.Time) error
}

// Tickets serves ViewTicketService.
type Tickets struct {
	sandboxv1.UnimplementedViewTicketServiceServer

	// Apps tells who owns an app (the served app's entry).
	Apps *appcache.Cache
	// CheckViewer asks apps, fresh, whether viewer may view app.
	CheckViewer func(ctx context.Context, app uuid.UUID, viewer owner.ID) (bool, error)
	Store       TicketStore
	// IsTooMany recognizes the store's "too many open tickets" error.
	IsTooMany func(error) bool
	Domain    origin.Domain
	TTL       time.Duration
	Now       func() time.Time
}

// Register adds the service to s.
func (t *Tickets) Register(s grpc.ServiceRegistrar) { sandboxv1.RegisterViewTicketServiceServer(s, t) }

// errNoApp is the one answer for an app that does not exist, is not served, or that the
// caller may not view: the three cannot be told apart.
func errNoApp() error { return fault.NotFound("app not found") }

// IssueViewTicket returns a one-time ticket for the caller to open app at its origin.
func (t *Tickets) IssueViewTicket(ctx context.Context, req *sandboxv1.IssueViewTicketRequest) (*sandboxv1.IssueViewTicketResponse, error) {
	viewer, ok := owner.FromContext(ctx)
	if !ok {
		return nil, fault.Unauthenticated("no verified owner")
	}
	app, err := uuid.Parse(req.GetAppId())
	if err != nil {
		return nil, fault.InvalidField("app_id", "want a UUID")
	}
	e, err := t.Apps.Get(ctx, app)
	if errors.Is(err, appcache.ErrNotFound) {
		return nil, errNoApp()
	}
	if err != nil {
		return nil, fault.Unavailable("apps is unavailable").Wrap(err)
	}
	// Asked fresh, not from the cache: a collaborator removed a moment ago gets no ticket.
	allowed, err := t.CheckViewer(ctx, app, viewer.ID)
	if err != nil {
		return nil, fault.Unavailable("apps is unavailable").Wrap(err)
	}
	if !allowed {
		return nil, errNoApp()
	}
	ticket, hash, err := origin.NewTicket()
	if err != nil {
		return nil, err
	}
	expiry := t.Now().Add(t.TTL).Truncate(time.Microsecond)
	if err := t.Store.IssueTicket(ctx, e.App.Owner, hash, app, viewer.ID, expiry); err != nil {
		if t.IsTooMany != nil && t.IsTooMany(err) {
			return nil, fault.ResourceExhausted("too many open view tickets for this app's owner")
		}
		return nil, err
	}
	return &sandboxv1.IssueViewTicketResponse{
		Ticket:     ticket.Reveal(),
		Url:        t.Domain.Origin(app) + "/?forge_ticket=" + ticket.Reveal(),
		ExpireTime: timestamppb.New(expiry),
	}, nil
}
