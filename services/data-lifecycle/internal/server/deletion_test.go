package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	lcevents "github.com/forgeapps/backbone/services/data-lifecycle/internal/events"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"
)

func TestConsumersAreListed(t *testing.T) {
	for _, c := range lcevents.Consumers(nil, nil, nil) {
		require.True(t, events.IsListed(c), "%s must be in events.DurableConsumers()", c.Durable)
	}
}

func (h *harness) state(o owner.ID, id uuid.UUID) (lifecycle.DeletionState, int) {
	h.t.Helper()
	var state string
	var attempts int
	require.NoError(h.t, h.pg.Migrator.QueryRow(h.ctx, `SELECT state, purge_attempts FROM deletions WHERE owner_id = $1 AND id = $2`,
		o, id).Scan(&state, &attempts))
	return lifecycle.DeletionState(state), attempts
}

func (h *harness) request(o owner.ID) (*lifecyclev1.Deletion, string) {
	h.t.Helper()
	resp, err := h.delete.RequestDeletion(h.as(o), &lifecyclev1.RequestDeletionRequest{Confirm: lifecycle.ConfirmPhrase})
	require.NoError(h.t, err)
	return resp.GetDeletion(), resp.GetReceiptToken()
}

// report publishes another store's completion through the real event path (outbox, relay,
// JetStream), the way tenant, apps and secrets-vault report.
func (h *harness) report(o owner.ID, deletionID uuid.UUID, store string, rows int64, versions ...uint32) {
	h.t.Helper()
	err := h.pg.DB.Tx(h.ctx, o, func(ctx context.Context, tx database.Tx) error {
		_, err := h.outbox.Enqueue(ctx, tx, &eventsv1.PurgeStoreCompleted{
			Meta:       &eventsv1.EventMeta{OwnerId: o.String()},
			DeletionId: deletionID.String(), Store: store, RowsDeleted: rows, KeyVersionsDestroyed: versions,
		})
		return err
	})
	require.NoError(h.t, err)
}

func (h *harness) tick() {
	h.t.Helper()
	require.NoError(h.t, h.w.Tick(h.ctx))
}

// TestDeletionSchedule moves the clock: nothing at 29 days 23 hours, the purge at 30 days; a
// deletion cancelled on day 29 is never purged; a clock moved backwards purges nothing early.
// Along the way NATS is stopped (the purge waits in the outbox) and Postgres' connections are
// terminated (the scheduler recovers), and every store's report is needed for the certificate.
func TestDeletionSchedule(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	a, b, c := owner.New(), owner.New(), owner.New()

	da, receipt := h.request(a)
	require.False(t, da.GetAccountDisabled(), "tenant and apps are down: the deletion must not claim the account is disabled")
	require.Equal(t, lifecyclev1.DeletionState_DELETION_STATE_PENDING, da.GetState())
	require.Equal(t, t0.Add(30*24*time.Hour), da.GetPurgeDueTime().AsTime())
	aID := uuid.MustParse(da.GetDeletionId())

	db, _ := h.request(b)
	bID := uuid.MustParse(db.GetDeletionId())

	// c asks later; then the clock goes back ten days (an NTP step, a bad host clock).
	h.clock.Set(t0.Add(24 * time.Hour))
	dc, _ := h.request(c)
	cID := uuid.MustParse(dc.GetDeletionId())
	h.clock.Set(t0.Add(-10 * 24 * time.Hour))
	h.tick()
	st, _ := h.state(c, cID)
	require.Equal(t, lifecycle.DeletionPending, st)

	// Day 29: b cancels. Tenant is down, so the restore is pending, retried by the reconciler.
	h.clock.Set(t0.Add(29 * 24 * time.Hour))
	cancelled, err := h.delete.CancelDeletion(h.as(b), &lifecyclev1.CancelDeletionRequest{})
	require.NoError(t, err)
	require.Equal(t, lifecyclev1.DeletionState_DELETION_STATE_CANCELLED, cancelled.GetDeletion().GetState())

	// 29 days 23 hours 59 minutes: nothing is purged.
	h.clock.Set(t0.Add(30*24*time.Hour - time.Minute))
	h.tick()
	st, _ = h.state(a, aID)
	require.Equal(t, lifecycle.DeletionPending, st)

	// Postgres drops every connection of the service; the next tick reconnects.
	h.pg.ExecAdmin(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = $1`, h.pg.Names.RuntimeRole)

	// NATS goes down: the claim still commits, its PurgeRequested waits in the outbox.
	h.nats.Shutdown()
	h.clock.Set(t0.Add(30 * 24 * time.Hour))
	eventually(t, "the scheduler to recover from the terminated connections", func() bool { return h.w.Tick(h.ctx) == nil })
	st, attempts := h.state(a, aID)
	require.Equal(t, lifecycle.DeletionPurging, st)
	require.Equal(t, 1, attempts)
	st, _ = h.state(b, bID)
	require.Equal(t, lifecycle.DeletionCancelled, st, "cancelled on day 29: never purged")
	st, _ = h.state(c, cID)
	require.Equal(t, lifecycle.DeletionPending, st)
	h.nats.Restart()

	// data-lifecycle purges its own stores from the event; the other stores are awaited.
	get := func() *lifecyclev1.GetDeletionByReceiptResponse {
		resp, err := h.delete.GetDeletionByReceipt(h.ctx, &lifecyclev1.GetDeletionByReceiptRequest{ReceiptToken: receipt})
		require.NoError(t, err)
		return resp
	}
	eventually(t, "data-lifecycle's own stores to report", func() bool {
		return slices.Equal(get().GetDeletion().GetStoresPending(), []string{"apps", "sandbox-origin.postgres", "secrets-vault", "tenant"})
	})
	require.Nil(t, get().GetCertificate(), "no certificate while stores are pending")

	h.report(a, aID, "tenant", 12)
	h.report(a, aID, "apps", 30)
	h.report(a, aID, "sandbox-origin.postgres", 4)
	eventually(t, "three reports", func() bool { return len(get().GetDeletion().GetStoresPending()) == 1 })
	require.Nil(t, get().GetCertificate())
	// A store whose purge event is redelivered (or fanned out again) reports again with 0 rows:
	// tenant, apps, secrets-vault and sandbox-origin keep no inbox record of the purge. The
	// first report stands.
	h.report(a, aID, "tenant", 0)
	eventually(t, "the repeated report to be consumed", func() bool {
		var n int
		_ = h.pg.Migrator.QueryRow(h.ctx, `SELECT count(*) FROM outbox`).Scan(&n)
		return n == 0
	})
	var tenantRows int64
	require.NoError(t, h.pg.Migrator.QueryRow(h.ctx, `SELECT rows_deleted FROM purge_stores
		WHERE owner_id = $1 AND deletion_id = $2 AND store = 'tenant'`, a, aID).Scan(&tenantRows))
	require.EqualValues(t, 12, tenantRows, "a repeated report changes nothing")
	require.Len(t, get().GetDeletion().GetStoresPending(), 1)
	h.report(a, aID, "secrets-vault", 7, 1, 2)
	eventually(t, "the certificate", func() bool { return get().GetCertificate() != nil })

	resp := get()
	require.Equal(t, lifecyclev1.DeletionState_DELETION_STATE_COMPLETED, resp.GetDeletion().GetState())
	cert := lifecycle.Certificate{Payload: resp.GetCertificate().GetPayload(), Signature: resp.GetCertificate().GetSignature(), KeyID: resp.GetCertificate().GetKeyId()}
	p, err := lifecycle.Verify(h.pub, cert)
	require.NoError(t, err)
	require.Equal(t, lifecycle.OwnerHash(a), p.OwnerIDSHA256)
	require.NotContains(t, string(cert.Payload), a.String(), "the certificate names the tenant by hash only")
	require.Equal(t, []uint32{1, 2}, p.KeyVersionsDestroyed)
	require.Equal(t, t0.Add(60*24*time.Hour), p.BackupsExpireBy)
	require.Len(t, p.Stores, len(lifecycle.Registry()))
	for _, r := range p.Stores {
		if r.Store == "tenant" {
			require.EqualValues(t, 12, r.RowsDeleted, "the certificate carries each store's first report")
		}
	}
	// A duplicated report and a duplicated purge event change nothing.
	h.report(a, aID, "tenant", 999)
	require.NoError(t, h.w.Report(h.ctx, a, aID, lifecycle.StoreReport{Store: "tenant", RowsDeleted: 5}))
	require.NoError(t, h.w.PurgeOwnStores(h.ctx, a, aID))
	eventually(t, "the duplicate to be consumed", func() bool {
		var n int
		_ = h.pg.Migrator.QueryRow(h.ctx, `SELECT count(*) FROM outbox`).Scan(&n)
		return n == 0
	})
	again := get()
	require.Equal(t, resp.GetCertificate().GetPayload(), again.GetCertificate().GetPayload())

	// Tampering is detected.
	bad := cert
	bad.Payload = append([]byte{}, cert.Payload...)
	bad.Payload[10] ^= 1
	_, err = lifecycle.Verify(h.pub, bad)
	require.ErrorIs(t, err, lifecycle.ErrBadSignature)

	// The ledger entry (for a replay after a restore) holds the owner ID itself.
	entry, err := h.ledger.ReadAll(h.ctx, workflow.LedgerPrefix+aID.String()+".json")
	require.NoError(t, err)
	require.Contains(t, string(entry), a.String())

	// c's 29 days 23 hours (the clock went back after its request): still pending.
	h.clock.Set(t0.Add(24*time.Hour + 29*24*time.Hour + 23*time.Hour))
	h.tick()
	st, _ = h.state(c, cID)
	require.Equal(t, lifecycle.DeletionPending, st, "c is not due before its own 30 days, whatever the clock did")

	// Day 31: b (cancelled) is still not purged, c is purging on its own due day only.
	h.clock.Set(t0.Add(31 * 24 * time.Hour))
	h.tick()
	st, _ = h.state(b, bID)
	require.Equal(t, lifecycle.DeletionCancelled, st)
	st, _ = h.state(c, cID)
	require.Equal(t, lifecycle.DeletionPurging, st)
}

// TestDeadLetterIsKept: a report from a store the registry does not know is retried, then
// kept in event_dead_letters (visible), never dropped; the purge stays incomplete.
func TestDeadLetterIsKept(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	a := owner.New()
	d, _ := h.request(a)
	h.clock.Set(t0.Add(lifecycle.PurgeDelay))
	h.tick()
	id := uuid.MustParse(d.GetDeletionId())
	h.report(a, id, "mystery-store", 1)
	eventually(t, "the dead letter to be recorded", func() bool {
		var n int
		_ = h.pg.Migrator.QueryRow(h.ctx, `SELECT count(*) FROM event_dead_letters
			WHERE owner_id = $1 AND consumer = 'data-lifecycle-purge-completed' AND reason = 'max_deliveries'`, a).Scan(&n)
		return n == 1
	})
	st, _ := h.state(a, id)
	require.Equal(t, lifecycle.DeletionPurging, st)
}
