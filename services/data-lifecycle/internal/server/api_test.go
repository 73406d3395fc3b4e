package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"
)

func requireCode(t *testing.T, err error, code codes.Code) *status.Status {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok)
	require.Equal(t, code, st.Code(), st.Message())
	return st
}

// readyExport makes a ready export of o directly in storage (the export pipeline itself needs
// tenant, apps and secrets-vault, and is exercised by the stack tests and the archive tests).
func (h *harness) readyExport(o owner.ID) uuid.UUID {
	h.t.Helper()
	e, err := h.store.CreateExport(h.ctx, owner.Owner{ID: o, HomeRegion: owner.DefaultRegion}, h.clock.Now())
	require.NoError(h.t, err)
	attempt, ok, err := h.store.StartExportAttempt(h.ctx, o, e.ID, h.clock.Now())
	require.NoError(h.t, err)
	require.True(h.t, ok)
	key := "exports/" + o.String() + "/" + e.ID.String() + "/a1.fgex"
	require.NoError(h.t, h.objects.WriteAll(h.ctx, key, []byte("sealed archive"), nil))
	done, err := h.store.FinishExport(h.ctx, o, e.ID, attempt, key, 14, h.clock.Now())
	require.NoError(h.t, err)
	require.True(h.t, done)
	return e.ID
}

func (h *harness) rowCounts() map[string]int {
	h.t.Helper()
	out := map[string]int{}
	// The outbox is not compared: the running relay drains it at any moment, so its count says
	// nothing about who wrote. Every state change enqueues its event in the same transaction,
	// so unchanged state tables mean no event was written either.
	for _, tbl := range []string{"exports", "export_links", "deletions", "purge_stores"} {
		var n int
		require.NoError(h.t, h.pg.Migrator.QueryRow(h.ctx, `SELECT count(*) FROM `+tbl).Scan(&n))
		out[tbl] = n
	}
	var ready int
	require.NoError(h.t, h.pg.Migrator.QueryRow(h.ctx, `SELECT count(*) FROM exports WHERE state = 'ready'`).Scan(&ready))
	out["ready"] = ready
	return out
}

// TestCrossTenant: a second tenant using the first one's IDs and tokens gets exactly what a
// nonexistent ID gets, and changes nothing.
func TestCrossTenant(t *testing.T) {
	h := newHarness(t, harnessOpts{noConsumers: true})
	a, b := owner.New(), owner.New()
	exp := h.readyExport(a)
	link, err := h.export.CreateDownloadLink(h.as(a), &lifecyclev1.CreateDownloadLinkRequest{ExportId: exp.String()})
	require.NoError(t, err)
	token := link.GetUrl()[strings.Index(link.GetUrl(), "token=")+len("token="):]
	da, _ := h.request(owner.New()) // someone else's pending deletion, to be sure b cannot reach it
	_ = da
	_, _ = h.request(a)
	// a's deletion cancelled a's exports only if active; the ready one stays downloadable.
	before := h.rowCounts()
	missing := uuid.New().String()

	cases := []struct {
		name string
		call func(id string) error
	}{
		{"GetExport", func(id string) error {
			_, err := h.export.GetExport(h.as(b), &lifecyclev1.GetExportRequest{ExportId: id})
			return err
		}},
		{"CancelExport", func(id string) error {
			_, err := h.export.CancelExport(h.as(b), &lifecyclev1.CancelExportRequest{ExportId: id})
			return err
		}},
		{"CreateDownloadLink", func(id string) error {
			_, err := h.export.CreateDownloadLink(h.as(b), &lifecyclev1.CreateDownloadLinkRequest{ExportId: id})
			return err
		}},
		{"DownloadExport", func(id string) error {
			s, err := h.export.DownloadExport(h.as(b), &lifecyclev1.DownloadExportRequest{ExportId: id, Token: token})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			foreign := requireCode(t, tc.call(exp.String()), codes.NotFound)
			absent := requireCode(t, tc.call(missing), codes.NotFound)
			require.Equal(t, absent.Message(), foreign.Message(), "foreign and missing must be indistinguishable")
		})
	}
	t.Run("ListExports", func(t *testing.T) {
		resp, err := h.export.ListExports(h.as(b), &lifecyclev1.ListExportsRequest{})
		require.NoError(t, err)
		require.Empty(t, resp.GetExports())
	})
	t.Run("deletion", func(t *testing.T) {
		_, err := h.delete.GetDeletion(h.as(b), &lifecyclev1.GetDeletionRequest{})
		requireCode(t, err, codes.NotFound)
		_, err = h.delete.CancelDeletion(h.as(b), &lifecyclev1.CancelDeletionRequest{})
		requireCode(t, err, codes.NotFound)
	})
	require.Equal(t, before, h.rowCounts(), "the second tenant changed nothing")

	// The owner's own token works once; then it is gone.
	s, err := h.export.DownloadExport(h.as(a), &lifecyclev1.DownloadExportRequest{ExportId: exp.String(), Token: token})
	require.NoError(t, err)
	_, err = s.Recv()
	// The link is consumed before the archive is opened; opening needs secrets-vault (down here).
	require.Error(t, err)
	requireCode(t, err, codes.Internal)
	s, err = h.export.DownloadExport(h.as(a), &lifecyclev1.DownloadExportRequest{ExportId: exp.String(), Token: token})
	require.NoError(t, err)
	_, err = s.Recv()
	requireCode(t, err, codes.NotFound)
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, harnessOpts{noConsumers: true})
	a := owner.New()
	before := h.rowCounts()
	long := strings.Repeat("x", 129)
	cases := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"GetExport malformed id", func() error {
			_, err := h.export.GetExport(h.as(a), &lifecyclev1.GetExportRequest{ExportId: "42"})
			return err
		}, codes.InvalidArgument},
		{"GetExport missing id", func() error {
			_, err := h.export.GetExport(h.as(a), &lifecyclev1.GetExportRequest{})
			return err
		}, codes.InvalidArgument},
		{"CreateDownloadLink malformed id", func() error {
			_, err := h.export.CreateDownloadLink(h.as(a), &lifecyclev1.CreateDownloadLinkRequest{ExportId: "../x"})
			return err
		}, codes.InvalidArgument},
		{"DownloadExport no token", func() error {
			s, err := h.export.DownloadExport(h.as(a), &lifecyclev1.DownloadExportRequest{ExportId: uuid.NewString()})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument},
		{"DownloadExport oversize token", func() error {
			s, err := h.export.DownloadExport(h.as(a), &lifecyclev1.DownloadExportRequest{ExportId: uuid.NewString(), Token: long})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument},
		{"DownloadExport forged token", func() error {
			s, err := h.export.DownloadExport(h.as(a), &lifecyclev1.DownloadExportRequest{ExportId: uuid.NewString(), Token: "fgd_nope"})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.NotFound},
		{"RequestDeletion without confirmation", func() error {
			_, err := h.delete.RequestDeletion(h.as(a), &lifecyclev1.RequestDeletionRequest{})
			return err
		}, codes.InvalidArgument},
		{"RequestDeletion wrong confirmation", func() error {
			_, err := h.delete.RequestDeletion(h.as(a), &lifecyclev1.RequestDeletionRequest{Confirm: "delete my account"})
			return err
		}, codes.InvalidArgument},
		{"GetDeletionByReceipt empty", func() error {
			_, err := h.delete.GetDeletionByReceipt(h.ctx, &lifecyclev1.GetDeletionByReceiptRequest{})
			return err
		}, codes.InvalidArgument},
		{"GetDeletionByReceipt unknown", func() error {
			_, err := h.delete.GetDeletionByReceipt(h.ctx, &lifecyclev1.GetDeletionByReceiptRequest{ReceiptToken: "fgr_" + strings.Repeat("A", 43)})
			return err
		}, codes.NotFound},
		{"CancelDeletion with none", func() error {
			_, err := h.delete.CancelDeletion(h.as(a), &lifecyclev1.CancelDeletionRequest{})
			return err
		}, codes.NotFound},
		{"no owner", func() error {
			_, err := h.export.CreateExport(h.ctx, &lifecyclev1.CreateExportRequest{})
			return err
		}, codes.Unauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { requireCode(t, tc.call(), tc.code) })
	}
	require.Equal(t, before, h.rowCounts(), "bad input changed nothing")
}

// TestOneExportAtATime: the second concurrent export is refused, by the database's unique
// partial index even when the code is bypassed; a deletion request cancels active exports.
func TestOneExportAtATime(t *testing.T) {
	h := newHarness(t, harnessOpts{noConsumers: true})
	a := owner.New()
	first, err := h.export.CreateExport(h.as(a), &lifecyclev1.CreateExportRequest{})
	require.NoError(t, err)
	require.Equal(t, lifecyclev1.ExportState_EXPORT_STATE_PENDING, first.GetExport().GetState())
	_, err = h.export.CreateExport(h.as(a), &lifecyclev1.CreateExportRequest{})
	requireCode(t, err, codes.FailedPrecondition)
	// Another tenant is not held up.
	_, err = h.export.CreateExport(h.as(owner.New()), &lifecyclev1.CreateExportRequest{})
	require.NoError(t, err)
	// The rule lives in the database.
	_, err = h.pg.Migrator.Exec(h.ctx, `INSERT INTO exports (owner_id, id, state, created_at, updated_at) VALUES ($1, $2, 'running', now(), now())`, a, uuid.New())
	require.ErrorContains(t, err, "exports_one_active")
	// Each recorded export's ExportRequested was written with it and reaches the stream.
	js := h.nats.JetStream(t)
	eventually(t, "two ExportRequested on the stream", func() bool {
		info, err := js.Stream(h.ctx, "LIFECYCLE")
		if err != nil {
			return false
		}
		si, err := info.Info(h.ctx, jetstreamSubjects("lifecycle.export.requested"))
		return err == nil && si.State.Subjects["lifecycle.export.requested"] == 2
	})

	_, _ = h.request(a)
	got, err := h.export.GetExport(h.as(a), &lifecyclev1.GetExportRequest{ExportId: first.GetExport().GetExportId()})
	require.NoError(t, err)
	require.Equal(t, lifecyclev1.ExportState_EXPORT_STATE_CANCELLED, got.GetExport().GetState(), "a deletion request cancels pending exports")
	_, err = h.delete.RequestDeletion(h.as(a), &lifecyclev1.RequestDeletionRequest{Confirm: lifecycle.ConfirmPhrase})
	requireCode(t, err, codes.FailedPrecondition)
}

// TestExportExpiry: an archive is kept 7 days, then deleted by the scheduler.
func TestExportExpiry(t *testing.T) {
	h := newHarness(t, harnessOpts{noConsumers: true})
	a := owner.New()
	id := h.readyExport(a)
	e, err := h.store.GetExport(h.ctx, a, id)
	require.NoError(t, err)
	h.clock.Set(t0.Add(7*24*time.Hour - time.Second))
	h.tick()
	ok, err := h.objects.Exists(h.ctx, e.ObjectKey)
	require.NoError(t, err)
	require.True(t, ok)
	h.clock.Set(t0.Add(7 * 24 * time.Hour))
	h.tick()
	ok, err = h.objects.Exists(h.ctx, e.ObjectKey)
	require.NoError(t, err)
	require.False(t, ok, "the archive is deleted after 7 days")
	got, err := h.export.GetExport(h.as(a), &lifecyclev1.GetExportRequest{ExportId: id.String()})
	require.NoError(t, err)
	require.Equal(t, lifecyclev1.ExportState_EXPORT_STATE_EXPIRED, got.GetExport().GetState())
	_, err = h.export.CreateDownloadLink(h.as(a), &lifecyclev1.CreateDownloadLinkRequest{ExportId: id.String()})
	requireCode(t, err, codes.FailedPrecondition)
}

// TestClaimOnce: four replicas tick at once over the same due deletions; each is claimed once
// (one PurgeRequested each, one attempt).
func TestClaimOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{noConsumers: true})
	// Stop the relay's effect from hiding outbox rows: count before it publishes by reading
	// the stream instead would race; the relay is running, so count events on the stream.
	var owners []owner.ID
	for range 12 {
		o := owner.New()
		owners = append(owners, o)
		h.request(o)
	}
	h.clock.Set(t0.Add(30 * 24 * time.Hour))
	replicas := make([]*workflow.Workflows, 4)
	for i := range replicas {
		replicas[i] = h.w
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, r := range replicas {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- r.Tick(context.Background()) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, o := range owners {
		var attempts, stores int
		require.NoError(t, h.pg.Migrator.QueryRow(h.ctx, `SELECT purge_attempts, (SELECT count(*) FROM purge_stores p WHERE p.owner_id = d.owner_id)
			FROM deletions d WHERE owner_id = $1`, o).Scan(&attempts, &stores))
		require.Equal(t, 1, attempts)
		require.Equal(t, len(lifecycle.Registry()), stores)
	}
	js := h.nats.JetStream(t)
	eventually(t, "one PurgeRequested per deletion on the stream", func() bool {
		info, err := js.Stream(h.ctx, "LIFECYCLE")
		if err != nil {
			return false
		}
		si, err := info.Info(h.ctx, jetstreamSubjects("lifecycle.purge.requested"))
		return err == nil && si.State.Subjects["lifecycle.purge.requested"] == uint64(len(owners))
	})
}

// TestIncompletePurgeIsRetried: a purge whose stores do not all report is visible (status and
// metric query) and fanned out again after the retry interval, never forgotten.
func TestIncompletePurgeIsRetried(t *testing.T) {
	h := newHarness(t, harnessOpts{noConsumers: true})
	a := owner.New()
	h.request(a)
	h.clock.Set(t0.Add(30 * 24 * time.Hour))
	h.tick()
	d, err := h.delete.GetDeletion(h.as(a), &lifecyclev1.GetDeletionRequest{})
	require.NoError(t, err)
	require.Equal(t, lifecyclev1.DeletionState_DELETION_STATE_PURGING, d.GetDeletion().GetState())
	require.Len(t, d.GetDeletion().GetStoresPending(), len(lifecycle.Registry()))
	require.EqualValues(t, 1, d.GetDeletion().GetPurgeAttempts())
	all, late, err := h.store.PurgeStatus(h.ctx, h.clock.Now().Add(-10*time.Minute))
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 0}, [2]int64{all, late})

	h.clock.Advance(9 * time.Minute)
	h.tick()
	d, err = h.delete.GetDeletion(h.as(a), &lifecyclev1.GetDeletionRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 1, d.GetDeletion().GetPurgeAttempts(), "not retried before the interval")

	h.clock.Advance(2 * time.Minute)
	all, late, err = h.store.PurgeStatus(h.ctx, h.clock.Now().Add(-10*time.Minute))
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 1}, [2]int64{all, late}, "overdue purges show in the metric")
	h.tick()
	d, err = h.delete.GetDeletion(h.as(a), &lifecyclev1.GetDeletionRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 2, d.GetDeletion().GetPurgeAttempts(), "fanned out again")
	_, err = h.delete.CancelDeletion(h.as(a), &lifecyclev1.CancelDeletionRequest{})
	requireCode(t, err, codes.FailedPrecondition)
}
