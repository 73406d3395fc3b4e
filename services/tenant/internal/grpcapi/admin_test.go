package grpcapi_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/interceptors"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/tenant/internal/tenanttest"
)

func TestChangePlan(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")
	ctx := ctxT(t)

	resp, err := s.plans.ChangePlan(ctx, &tenantv1.ChangePlanRequest{OwnerId: p.id.String(), Plan: tenantv1.Plan_PLAN_STUDIO})
	require.NoError(t, err)
	require.Equal(t, tenantv1.Plan_PLAN_STUDIO, resp.GetAccount().GetPlan())
	got, err := s.accounts.GetAccount(s.as(t, p), &tenantv1.GetAccountRequest{})
	require.NoError(t, err)
	require.Equal(t, tenantv1.Plan_PLAN_STUDIO, got.GetAccount().GetPlan())

	_, err = s.plans.ChangePlan(ctx, &tenantv1.ChangePlanRequest{OwnerId: owner.New().String(), Plan: tenantv1.Plan_PLAN_PRO})
	st := requireCode(t, err, codes.NotFound)
	require.Equal(t, "tenant not found", st.Message())
}

// An eu-west tenant stays on studio: the database holds the rule too.
func TestEUWestTenantStaysStudio(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{Region: owner.EUWest})
	p := s.signUp(t, tenantv1.Plan_PLAN_STUDIO, "eu-west")
	before := s.Snapshot(t)
	_, err := s.plans.ChangePlan(ctxT(t), &tenantv1.ChangePlanRequest{OwnerId: p.id.String(), Plan: tenantv1.Plan_PLAN_FREE})
	requireCode(t, err, codes.FailedPrecondition)
	require.Equal(t, before, s.Snapshot(t))

	_, err = s.PG.Migrator.Exec(ctxT(t), `update accounts set plan = 'pro' where owner_id = $1`, p.id)
	require.ErrorContains(t, err, "accounts_eu_west_is_studio")
}

func TestResolveEmail(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	ctx := ctxT(t)
	first := s.signUp(t, tenantv1.Plan_PLAN_PRO, "")
	// A later tenant with the same email (another identity) does not take it over.
	s.Clock.Advance(time.Second)
	_, err := s.sessions.SignIn(ctx, signInReq("later-"+first.subject, first.email, 0, ""))
	require.NoError(t, err)

	resp, err := s.apps.ResolveEmail(ctx, &tenantv1.ResolveEmailRequest{Email: first.email})
	require.NoError(t, err)
	require.Equal(t, first.id.String(), resp.GetOwnerId())
	require.Equal(t, tenantv1.Plan_PLAN_PRO, resp.GetPlan())
	upper, err := s.apps.ResolveEmail(ctx, &tenantv1.ResolveEmailRequest{Email: "SUB-" + first.email[4:]})
	require.NoError(t, err)
	require.Equal(t, first.id.String(), upper.GetOwnerId(), "case-insensitive")

	_, unknown := s.apps.ResolveEmail(ctx, &tenantv1.ResolveEmailRequest{Email: "nobody@example.com"})
	requireCode(t, unknown, codes.NotFound)

	// Pending deletion: not resolvable, answered as for an unknown email; the later tenant
	// with the same email is the active one now.
	lone := s.signUp(t, 0, "")
	_, err = s.admin.DisableTenant(ctx, &tenantv1.DisableTenantRequest{OwnerId: lone.id.String()})
	require.NoError(t, err)
	_, err = s.apps.ResolveEmail(ctx, &tenantv1.ResolveEmailRequest{Email: lone.email})
	sameAnswer(t, unknown, err)
}

func TestLookupHomeRegion(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")
	for _, c := range []tenantv1.TenantAdminServiceClient{s.edge, s.apps, s.admin} {
		resp, err := c.LookupHomeRegion(ctxT(t), &tenantv1.LookupHomeRegionRequest{OwnerId: p.id.String()})
		require.NoError(t, err)
		require.Equal(t, "us-east", resp.GetHomeRegion())
	}
	_, err := s.edge.LookupHomeRegion(ctxT(t), &tenantv1.LookupHomeRegionRequest{OwnerId: owner.New().String()})
	requireCode(t, err, codes.NotFound)

	// The directory also answers for tenants homed elsewhere: that is its purpose.
	foreign := owner.New()
	_, err = s.PG.Migrator.Exec(ctxT(t), `insert into region_directory (owner_id, home_region) values ($1, 'eu-west')`, foreign)
	require.NoError(t, err)
	resp, err := s.edge.LookupHomeRegion(ctxT(t), &tenantv1.LookupHomeRegionRequest{OwnerId: foreign.String()})
	require.NoError(t, err)
	require.Equal(t, "eu-west", resp.GetHomeRegion())

	// The directory holds owner_id and home region, nothing else.
	var cols []string
	rows, err := s.PG.Migrator.Query(ctxT(t), `select column_name::text from information_schema.columns
		where table_schema = 'tenant' and table_name = 'region_directory' order by ordinal_position`)
	require.NoError(t, err)
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"owner_id", "home_region"}, cols)
}

func exportAll(t *testing.T, c tenantv1.TenantAdminServiceClient, id owner.ID) ([]*tenantv1.ExportTenantResponse, error) {
	t.Helper()
	stream, err := c.ExportTenant(ctxT(t), &tenantv1.ExportTenantRequest{OwnerId: id.String()})
	require.NoError(t, err)
	var items []*tenantv1.ExportTenantResponse
	for {
		item, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return items, nil
		}
		if err != nil {
			return items, err
		}
		items = append(items, item)
	}
}

func TestExportTenant(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")
	other := s.signUp(t, 0, "")
	s.grant(t, other, 5)
	const grants = 1203 // more than two export pages
	// Seed the ledger as the table owner: a thousand RPCs would only slow the test.
	_, err := s.PG.Migrator.Exec(ctxT(t), `
		insert into credit_entries (owner_id, id, seq, amount, reason, idempotency_key, balance_after, created_at)
		select $1, gen_random_uuid(), g, 1, 'seed', 'seed-' || g, g, now() from generate_series(1, $2) g`, p.id, grants)
	require.NoError(t, err)
	_, err = s.PG.Migrator.Exec(ctxT(t), `update credit_balances set balance = $2, last_seq = $2 where owner_id = $1`, p.id, grants)
	require.NoError(t, err)

	items, err := exportAll(t, s.admin, p.id)
	require.NoError(t, err)
	require.Len(t, items, 1+grants)
	require.Equal(t, p.id.String(), items[0].GetAccount().GetOwnerId(), "the account comes first")
	require.Equal(t, p.email, items[0].GetAccount().GetEmail())
	for i, it := range items[1:] {
		require.NotNil(t, it.GetCreditEntry(), "item %d", i+1)
		require.Equal(t, "seed", it.GetCreditEntry().GetReason(), "only the owner's entries")
	}

	_, err = exportAll(t, s.admin, owner.New())
	requireCode(t, err, codes.NotFound)
}

func TestPurgeTenant(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	ctx := ctxT(t)
	p := s.signUp(t, 0, "")
	keep := s.signUp(t, 0, "")
	for range 5 {
		s.grant(t, p, 2)
		_, err := s.sessions.SignIn(ctx, signInReq(p.subject, p.email, 0, ""))
		require.NoError(t, err)
	}
	keepBefore := s.Snapshot(t, keep.id)

	// An active tenant is never purged.
	before := s.Snapshot(t)
	_, err := s.admin.PurgeTenant(ctx, &tenantv1.PurgeTenantRequest{OwnerId: p.id.String(), BatchSize: 3})
	requireCode(t, err, codes.FailedPrecondition)
	require.Equal(t, before, s.Snapshot(t))

	_, err = s.admin.DisableTenant(ctx, &tenantv1.DisableTenantRequest{OwnerId: p.id.String()})
	require.NoError(t, err)
	var total int64
	batches := 0
	for {
		resp, err := s.admin.PurgeTenant(ctx, &tenantv1.PurgeTenantRequest{OwnerId: p.id.String(), BatchSize: 3})
		require.NoError(t, err)
		require.LessOrEqual(t, resp.GetRowsDeleted(), int64(3)+3, "a batch is bounded (plus the three root rows)")
		total += resp.GetRowsDeleted()
		batches++
		if resp.GetDone() {
			break
		}
		require.Less(t, batches, 100)
	}
	require.Greater(t, batches, 3)
	// 6 sessions + 5 entries + 1 identity + balance, account, directory.
	require.EqualValues(t, 6+5+1+3, total)

	again, err := s.admin.PurgeTenant(ctx, &tenantv1.PurgeTenantRequest{OwnerId: p.id.String()})
	require.NoError(t, err)
	require.True(t, again.GetDone())
	require.Zero(t, again.GetRowsDeleted())

	// Nothing of the tenant is left but its pending announcements (the relay publishes and
	// removes those): purged, and the sessions revoked by the disable.
	for table, rows := range s.Snapshot(t, p.id) {
		if table == "outbox" {
			continue
		}
		require.Empty(t, rows, "rows of the purged tenant in %s", table)
	}
	require.Contains(t, s.OutboxSubjects(t, p.id), "tenant.account.status_changed")
	require.Equal(t, keepBefore, s.Snapshot(t, keep.id), "another tenant is untouched")

	// The person can sign up again, as a new tenant.
	fresh, err := s.sessions.SignIn(ctx, signInReq(p.subject, p.email, 0, ""))
	require.NoError(t, err)
	require.True(t, fresh.GetCreated())
	require.NotEqual(t, p.id.String(), fresh.GetAccount().GetOwnerId())
}

// System methods that name a tenant homed in another region refuse with FailedPrecondition
// naming the home region, and write nothing; an owner context asserting another region is
// refused by the owner interceptor the same way.
func TestRequestsForAnotherRegionWriteNothing(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	foreign := owner.New()
	// The directory row as the cross-region directory will deliver it (a later issue); no
	// other row of that tenant exists here.
	_, err := s.PG.Migrator.Exec(ctxT(t), `insert into region_directory (owner_id, home_region) values ($1, 'eu-west')`, foreign)
	require.NoError(t, err)
	local := s.signUp(t, 0, "")
	s.grant(t, local, 5)
	id := foreign.String()

	calls := map[string]func(ctx context.Context) error{
		"ChangePlan": func(ctx context.Context) error {
			_, err := s.plans.ChangePlan(ctx, &tenantv1.ChangePlanRequest{OwnerId: id, Plan: tenantv1.Plan_PLAN_STUDIO})
			return err
		},
		"GrantCredits": func(ctx context.Context) error {
			_, err := s.billing.GrantCredits(ctx, &tenantv1.GrantCreditsRequest{OwnerId: id, Amount: 1, Reason: "r", IdempotencyKey: "k"})
			return err
		},
		"DisableTenant": func(ctx context.Context) error {
			_, err := s.admin.DisableTenant(ctx, &tenantv1.DisableTenantRequest{OwnerId: id})
			return err
		},
		"RestoreTenant": func(ctx context.Context) error {
			_, err := s.admin.RestoreTenant(ctx, &tenantv1.RestoreTenantRequest{OwnerId: id})
			return err
		},
		"PurgeTenant": func(ctx context.Context) error {
			_, err := s.admin.PurgeTenant(ctx, &tenantv1.PurgeTenantRequest{OwnerId: id})
			return err
		},
		"ExportTenant": func(context.Context) error {
			_, err := exportAll(t, s.admin, foreign)
			return err
		},
		"owner context from eu-west: DebitCredits": func(ctx context.Context) error {
			ctx = owner.NewContext(ctx, owner.Owner{ID: local.id, HomeRegion: owner.EUWest})
			_, err := s.builder.DebitCredits(ctx, &tenantv1.DebitCreditsRequest{Amount: 1, Reason: "r", IdempotencyKey: "k"})
			return err
		},
		"owner context from eu-west: RevokeAllSessions": func(ctx context.Context) error {
			ctx = owner.NewContext(ctx, owner.Owner{ID: local.id, HomeRegion: owner.EUWest})
			_, err := s.sessions.RevokeAllSessions(ctx, &tenantv1.RevokeAllSessionsRequest{})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			before := s.Snapshot(t)
			st := requireCode(t, call(ctxT(t)), codes.FailedPrecondition)
			require.Contains(t, st.Message(), "eu-west")
			info := errorInfo(st)
			require.NotNil(t, info)
			require.Equal(t, interceptors.ReasonWrongRegion, info.GetReason())
			require.Equal(t, "eu-west", info.GetMetadata()["home_region"])
			require.Equal(t, before, s.Snapshot(t), "a refused request writes nothing")
		})
	}
}
