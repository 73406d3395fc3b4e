package grpcapi_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	sandboxv1 "github.com/forgeapps/backbone/pkg/gen/forge/sandbox/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/grpcapi"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/sandboxtest"
)

func TestIssueViewTicket(t *testing.T) {
	s := sandboxtest.Start(t, sandboxtest.Options{})
	tickets := &grpcapi.Tickets{Apps: s.Cache, CheckViewer: s.Remote.CheckViewer, Store: s.Store,
		Domain: s.Domain, TTL: time.Minute, Now: s.Clock.Now}
	addr := s.PKI.Start(t, grpctest.Server{Name: workload.SandboxOrigin, Table: grpcapi.Table(), Register: tickets.Register})
	asGateway := sandboxv1.NewViewTicketServiceClient(s.PKI.Dial(t, addr, workload.Gateway, workload.SandboxOrigin))
	asApps := sandboxv1.NewViewTicketServiceClient(s.PKI.Dial(t, addr, workload.Apps, workload.SandboxOrigin))

	ownerA, collaborator, stranger := owner.New(), owner.New(), owner.New()
	app := uuid.New()
	s.Apps.Put(app, &sandboxtest.App{Owner: ownerA, Visibility: appsv1.Visibility_VISIBILITY_PRIVATE,
		Files: map[string]string{"index.html": "private"}, Viewers: map[owner.ID]bool{collaborator: true}})
	strangersApp := uuid.New()
	s.Apps.Put(strangersApp, &sandboxtest.App{Owner: stranger, Visibility: appsv1.Visibility_VISIBILITY_PRIVATE,
		Files: map[string]string{"index.html": "x"}})
	ctx := context.Background()
	count := func() int {
		var n int
		require.NoError(t, s.PG.Migrator.QueryRow(ctx, `SELECT count(*) FROM view_tickets`).Scan(&n))
		return n
	}

	for _, viewer := range []owner.ID{ownerA, collaborator} {
		resp, err := asGateway.IssueViewTicket(grpctest.AsOwner(ctx, viewer), &sandboxv1.IssueViewTicketRequest{AppId: app.String()})
		require.NoError(t, err)
		require.Len(t, resp.GetTicket(), 43)
		u, err := url.Parse(resp.GetUrl())
		require.NoError(t, err)
		require.Equal(t, s.Domain.Origin(app), u.Scheme+"://"+u.Host)
		require.Equal(t, resp.GetTicket(), u.Query().Get("forge_ticket"))
		require.WithinDuration(t, s.Clock.Now().Add(time.Minute), resp.GetExpireTime().AsTime(), time.Second)
		hash, err := origin.HashTicket(resp.GetTicket())
		require.NoError(t, err)
		var storedOwner, storedViewer uuid.UUID
		var storedApp uuid.UUID
		require.NoError(t, s.PG.Migrator.QueryRow(ctx,
			`SELECT owner_id, app_id, viewer_id FROM view_tickets WHERE ticket_hash = $1`, hash[:]).Scan(&storedOwner, &storedApp, &storedViewer))
		require.Equal(t, ownerA.UUID(), storedOwner)
		require.Equal(t, app, storedApp)
		require.Equal(t, viewer.UUID(), storedViewer)
		var plain int
		require.NoError(t, s.PG.Migrator.QueryRow(ctx,
			`SELECT count(*) FROM view_tickets WHERE position($1::bytea in ticket_hash) > 0`, []byte(resp.GetTicket())).Scan(&plain))
		require.Zero(t, plain, "only the hash is stored")
	}
	before := count()

	// A stranger, the stranger's app asked for by another tenant, an unknown app: one answer.
	var msgs []string
	for _, tc := range []struct {
		name   string
		viewer owner.ID
		app    string
	}{
		{"stranger on the owner's app", stranger, app.String()},
		{"owner on the stranger's app", ownerA, strangersApp.String()},
		{"unknown app", ownerA, uuid.NewString()},
	} {
		_, err := asGateway.IssueViewTicket(grpctest.AsOwner(ctx, tc.viewer), &sandboxv1.IssueViewTicketRequest{AppId: tc.app})
		require.Equal(t, codes.NotFound, status.Code(err), tc.name)
		msgs = append(msgs, status.Convert(err).Message())
	}
	require.Equal(t, msgs[0], msgs[1])
	require.Equal(t, msgs[0], msgs[2])
	require.Equal(t, before, count(), "refusals store nothing")

	t.Run("bad input", func(t *testing.T) {
		for _, id := range []string{"", "not-a-uuid", strings.Repeat("a", 200)} {
			_, err := asGateway.IssueViewTicket(grpctest.AsOwner(ctx, ownerA), &sandboxv1.IssueViewTicketRequest{AppId: id})
			require.Equal(t, codes.InvalidArgument, status.Code(err), id)
		}
	})
	t.Run("no owner", func(t *testing.T) {
		_, err := asGateway.IssueViewTicket(ctx, &sandboxv1.IssueViewTicketRequest{AppId: app.String()})
		require.Equal(t, codes.Unauthenticated, status.Code(err))
	})
	t.Run("another workload", func(t *testing.T) {
		_, err := asApps.IssueViewTicket(grpctest.AsOwner(ctx, ownerA), &sandboxv1.IssueViewTicketRequest{AppId: app.String()})
		require.Equal(t, codes.PermissionDenied, status.Code(err))
	})
	t.Run("collaborator removed gets no ticket at once", func(t *testing.T) {
		s.Apps.Update(app, func(a *sandboxtest.App) { delete(a.Viewers, collaborator) })
		_, err := asGateway.IssueViewTicket(grpctest.AsOwner(ctx, collaborator), &sandboxv1.IssueViewTicketRequest{AppId: app.String()})
		require.Equal(t, codes.NotFound, status.Code(err))
	})
	require.Equal(t, before, count())
}
