package grpcapi_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/tenant/internal/tenanttest"
)

func TestGetAndUpdateAccount(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")

	got, err := s.accounts.GetAccount(s.as(t, p), &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Equal(t, p.id.String(), got.GetAccount().GetOwnerId())
	require.Equal(t, p.email, got.GetAccount().GetEmail())
	require.Empty(t, got.GetAccount().GetDisplayName())

	s.Clock.Advance(time.Minute)
	name, notify := "Ada Lovelace", "ada@notify.example"
	upd, err := s.accounts.UpdateAccount(s.as(t, p), &tenantv1.UpdateAccountRequest{DisplayName: &name})
	require.NoError(t, err)
	require.Equal(t, name, upd.GetAccount().GetDisplayName())
	require.Empty(t, upd.GetAccount().GetNotificationEmail(), "an unset field is left alone")
	require.True(t, upd.GetAccount().GetUpdateTime().AsTime().After(got.GetAccount().GetUpdateTime().AsTime()))

	upd, err = s.accounts.UpdateAccount(s.as(t, p), &tenantv1.UpdateAccountRequest{NotificationEmail: &notify})
	require.NoError(t, err)
	require.Equal(t, name, upd.GetAccount().GetDisplayName())
	require.Equal(t, notify, upd.GetAccount().GetNotificationEmail())
	require.Equal(t, p.email, upd.GetAccount().GetEmail(), "the verified email is not owner-editable")

	got, err = s.accounts.GetAccount(s.as(t, p), &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Equal(t, upd.GetAccount().GetDisplayName(), got.GetAccount().GetDisplayName())
	require.Equal(t, upd.GetAccount().GetNotificationEmail(), got.GetAccount().GetNotificationEmail())

	// An owner this region has no account for.
	_, err = s.accounts.GetAccount(s.AsOwner(ctxT(t), owner.New(), ""), &tenantv1.GetAccountRequest{})
	st := requireCode(t, err, codes.NotFound)
	require.Equal(t, "account not found", st.Message())
	_, err = s.accounts.UpdateAccount(s.AsOwner(ctxT(t), owner.New(), ""), &tenantv1.UpdateAccountRequest{DisplayName: &name})
	requireCode(t, err, codes.NotFound)
}

// TestAppsReadsTheAssertedOwnersAccount: apps reads the plan of the owner it acts for (to allow
// Studio-only collaborator invites), without a session; it sees that owner's account only and
// changes nothing.
func TestAppsReadsTheAssertedOwnersAccount(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p, q := s.signUp(t, 0, ""), s.signUp(t, 0, "")
	_, err := s.plans.ChangePlan(ctxT(t), &tenantv1.ChangePlanRequest{OwnerId: p.id.String(), Plan: tenantv1.Plan_PLAN_STUDIO})
	require.NoError(t, err)
	apps := tenantv1.NewAccountServiceClient(s.Conn(workload.Apps))

	got, err := apps.GetAccount(s.AsOwner(ctxT(t), p.id, ""), &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Equal(t, p.id.String(), got.GetAccount().GetOwnerId())
	require.Equal(t, tenantv1.Plan_PLAN_STUDIO, got.GetAccount().GetPlan())
	got, err = apps.GetAccount(s.AsOwner(ctxT(t), q.id, ""), &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Equal(t, q.id.String(), got.GetAccount().GetOwnerId())
	require.Equal(t, tenantv1.Plan_PLAN_FREE, got.GetAccount().GetPlan())

	_, err = apps.GetAccount(ctxT(t), &tenantv1.GetAccountRequest{})
	requireCode(t, err, codes.Unauthenticated)
	name := "changed by apps"
	_, err = apps.UpdateAccount(s.AsOwner(ctxT(t), p.id, ""), &tenantv1.UpdateAccountRequest{DisplayName: &name})
	requireCode(t, err, codes.PermissionDenied)
	got, err = s.accounts.GetAccount(s.as(t, p), &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Empty(t, got.GetAccount().GetDisplayName())
}
