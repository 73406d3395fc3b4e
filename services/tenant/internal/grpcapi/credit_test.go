package grpcapi_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"

	"github.com/forgeapps/backbone/services/tenant/internal/tenanttest"
)

func TestGrantAndDebitAreIdempotent(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")
	ctx := ctxT(t)

	grant := &tenantv1.GrantCreditsRequest{OwnerId: p.id.String(), Amount: 100, Reason: "monthly", IdempotencyKey: "g-1"}
	first, err := s.billing.GrantCredits(ctx, grant)
	require.NoError(t, err)
	require.EqualValues(t, 100, first.GetBalance())
	require.EqualValues(t, 100, first.GetEntry().GetAmount())
	retry, err := s.billing.GrantCredits(ctx, grant)
	require.NoError(t, err)
	require.Equal(t, first.GetEntry().GetEntryId(), retry.GetEntry().GetEntryId(), "a retry returns the original entry")
	require.EqualValues(t, 100, retry.GetBalance())

	debit := &tenantv1.DebitCreditsRequest{Amount: 30, Reason: "build", IdempotencyKey: "d-1"}
	d1, err := s.builder.DebitCredits(s.as(t, p), debit)
	require.NoError(t, err)
	require.EqualValues(t, 70, d1.GetBalance())
	require.EqualValues(t, -30, d1.GetEntry().GetAmount())
	for range 3 {
		again, err := s.builder.DebitCredits(s.as(t, p), debit)
		require.NoError(t, err)
		require.Equal(t, d1.GetEntry().GetEntryId(), again.GetEntry().GetEntryId())
		require.EqualValues(t, 70, again.GetBalance())
	}

	before := s.Snapshot(t, p.id)
	for name, call := range map[string]func() error{
		"debit key with another amount": func() error {
			_, err := s.builder.DebitCredits(s.as(t, p), &tenantv1.DebitCreditsRequest{Amount: 31, Reason: "build", IdempotencyKey: "d-1"})
			return err
		},
		"debit key with another reason": func() error {
			_, err := s.builder.DebitCredits(s.as(t, p), &tenantv1.DebitCreditsRequest{Amount: 30, Reason: "other", IdempotencyKey: "d-1"})
			return err
		},
		"grant key reused by a debit": func() error {
			_, err := s.builder.DebitCredits(s.as(t, p), &tenantv1.DebitCreditsRequest{Amount: 100, Reason: "monthly", IdempotencyKey: "g-1"})
			return err
		},
		"debit key reused by a grant": func() error {
			_, err := s.billing.GrantCredits(ctx, &tenantv1.GrantCreditsRequest{OwnerId: p.id.String(), Amount: 30, Reason: "build", IdempotencyKey: "d-1"})
			return err
		},
		"grant key with another amount": func() error {
			_, err := s.billing.GrantCredits(ctx, &tenantv1.GrantCreditsRequest{OwnerId: p.id.String(), Amount: 101, Reason: "monthly", IdempotencyKey: "g-1"})
			return err
		},
	} {
		st := requireCode(t, call(), codes.FailedPrecondition)
		require.Contains(t, st.Message(), "idempotency key", name)
	}
	_, err = s.builder.DebitCredits(s.as(t, p), &tenantv1.DebitCreditsRequest{Amount: 71, Reason: "build", IdempotencyKey: "d-2"})
	st := requireCode(t, err, codes.FailedPrecondition)
	require.Equal(t, "INSUFFICIENT_CREDITS", errorInfo(st).GetReason())
	require.Equal(t, before, s.Snapshot(t, p.id), "refused ledger requests change nothing")

	bal, err := s.credits.GetCreditBalance(s.as(t, p), &tenantv1.GetCreditBalanceRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 70, bal.GetBalance())
	require.Len(t, bal.GetRecentEntries(), 2)
	require.Equal(t, d1.GetEntry().GetEntryId(), bal.GetRecentEntries()[0].GetEntryId(), "newest first")
	require.Equal(t, 2, s.Count(t, "credit_entries", p.id))
}

// The ledger never goes below zero, however many debits race: 100 goroutines on a pool of 2
// connections debit 1 credit each from a balance of 37.
func TestConcurrentDebitsNeverOverdraw(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{MaxConns: 2})
	p := s.signUp(t, 0, "")
	s.grant(t, p, 37)

	const n = 100
	codesSeen := make([]codes.Code, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.builder.DebitCredits(s.as(t, p), &tenantv1.DebitCreditsRequest{
				Amount: 1, Reason: "build", IdempotencyKey: fmt.Sprintf("race-%d", i),
			})
			codesSeen[i] = status.Code(err)
		})
	}
	wg.Wait()
	var ok, refused int
	for _, c := range codesSeen {
		switch c {
		case codes.OK:
			ok++
		case codes.FailedPrecondition:
			refused++
		default:
			t.Fatalf("a debit failed with %v: only success and insufficient credits are right", c)
		}
	}
	require.Equal(t, 37, ok)
	require.Equal(t, n-37, refused)

	var balance, sum int64
	require.NoError(t, s.PG.Migrator.QueryRow(ctxT(t), `select balance from credit_balances where owner_id = $1`, p.id).Scan(&balance))
	require.NoError(t, s.PG.Migrator.QueryRow(ctxT(t), `select coalesce(sum(amount), 0) from credit_entries where owner_id = $1`, p.id).Scan(&sum))
	require.Zero(t, balance)
	require.Zero(t, sum, "the ledger sums to the balance")
}

// Retries of one debit racing each other are applied once.
func TestConcurrentRetriesApplyOnce(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{MaxConns: 2})
	p := s.signUp(t, 0, "")
	s.grant(t, p, 50)

	const n = 20
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := s.builder.DebitCredits(s.as(t, p), &tenantv1.DebitCreditsRequest{Amount: 5, Reason: "build", IdempotencyKey: "same"})
			ids[i], errs[i] = resp.GetEntry().GetEntryId(), err
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, ids[0], ids[i])
	}
	bal, err := s.credits.GetCreditBalance(s.as(t, p), &tenantv1.GetCreditBalanceRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 45, bal.GetBalance())
}

// Pages are stable: entries recorded after the first page do not shift later pages, and the
// walk visits every entry once.
func TestListCreditEntriesPages(t *testing.T) {
	t.Parallel()
	s := newSuite(t, tenanttest.Options{})
	p := s.signUp(t, 0, "")
	for range 7 {
		s.grant(t, p, 1)
	}
	ctx := s.as(t, p)
	page1, err := s.credits.ListCreditEntries(ctx, &tenantv1.ListCreditEntriesRequest{PageSize: 3})
	require.NoError(t, err)
	require.Len(t, page1.GetEntries(), 3)
	require.NotEmpty(t, page1.GetNextPageToken())

	// Two more entries arrive between pages.
	s.grant(t, p, 1)
	s.grant(t, p, 1)

	seen := map[string]bool{}
	for _, e := range page1.GetEntries() {
		seen[e.GetEntryId()] = true
	}
	tok := page1.GetNextPageToken()
	pages := 1
	for tok != "" {
		page, err := s.credits.ListCreditEntries(ctx, &tenantv1.ListCreditEntriesRequest{PageSize: 3, PageToken: tok})
		require.NoError(t, err)
		for _, e := range page.GetEntries() {
			require.False(t, seen[e.GetEntryId()], "an entry listed twice")
			seen[e.GetEntryId()] = true
		}
		tok = page.GetNextPageToken()
		pages++
	}
	require.Len(t, seen, 7, "the walk lists the entries that existed when it started, once each")
	require.Equal(t, 3, pages)

	all, err := s.credits.ListCreditEntries(ctx, &tenantv1.ListCreditEntriesRequest{})
	require.NoError(t, err)
	require.Len(t, all.GetEntries(), 9, "default page size 20")
	require.Empty(t, all.GetNextPageToken())
}
