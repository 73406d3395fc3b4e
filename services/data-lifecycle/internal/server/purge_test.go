package server_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"
)

var errStopped = errors.New("worker stopped here")

// TestPurgeResumesAfterEveryStep stops data-lifecycle's purge after each of its durable steps
// (every write before the stop is committed, nothing after it happens), then runs it again:
// the end state is the one of an uninterrupted purge, and a duplicated purge event afterwards
// changes nothing.
func TestPurgeResumesAfterEveryStep(t *testing.T) {
	for _, step := range []string{"none", workflow.StepArchivesDeleted, workflow.StepArchivesReported,
		workflow.StepRowsBatch, workflow.StepRowsReported, workflow.StepLedgerWritten} {
		t.Run(step, func(t *testing.T) {
			var armed atomic.Bool
			armed.Store(step != "none")
			h := newHarness(t, harnessOpts{noConsumers: true, interrupt: func(s string) error {
				if s == step && armed.CompareAndSwap(true, false) {
					return errStopped
				}
				return nil
			}})
			a := owner.New()
			h.readyExport(a)
			h.readyExport(a)
			_, err := h.pg.Migrator.Exec(h.ctx, `INSERT INTO exports (owner_id, id, state, created_at, updated_at)
				SELECT $1, gen_random_uuid(), 'cancelled', now(), now() FROM generate_series(1, 1200)`, a)
			require.NoError(t, err)
			h.request(a)
			h.clock.Set(t0.Add(lifecycle.PurgeDelay))
			h.tick()
			d, err := h.store.OpenDeletion(h.ctx, a)
			require.NoError(t, err)
			for _, st := range []string{"tenant", "apps", "secrets-vault", "sandbox-origin.postgres"} {
				require.NoError(t, h.w.Report(h.ctx, a, d.ID, lifecycle.StoreReport{Store: st, RowsDeleted: 1, KeyVersionsDestroyed: []uint32{1}}))
			}

			err = h.w.PurgeOwnStores(h.ctx, a, d.ID)
			if step == "none" {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, errStopped)
				require.NoError(t, h.w.PurgeOwnStores(h.ctx, a, d.ID), "the redelivered event resumes the purge")
			}

			got, err := h.store.GetDeletion(h.ctx, a, d.ID)
			require.NoError(t, err)
			require.Equal(t, lifecycle.DeletionCompleted, got.State)
			require.Empty(t, got.StoresPending)
			p, err := lifecycle.Verify(h.pub, *got.Certificate)
			require.NoError(t, err)
			require.Equal(t, []uint32{1}, p.KeyVersionsDestroyed)
			var rows int
			require.NoError(t, h.pg.Migrator.QueryRow(h.ctx, `SELECT (SELECT count(*) FROM exports WHERE owner_id = $1)
				+ (SELECT count(*) FROM export_links WHERE owner_id = $1) + (SELECT count(*) FROM inbox WHERE owner_id = $1)`, a).Scan(&rows))
			require.Zero(t, rows)
			ok, err := h.objects.Exists(h.ctx, "exports/"+a.String()+"/")
			require.NoError(t, err)
			require.False(t, ok)
			n := 0
			it := h.objects.List(nil)
			for {
				if _, err := it.Next(h.ctx); err != nil {
					break
				}
				n++
			}
			require.Zero(t, n, "no archive left")
			ledger, err := h.ledger.Exists(h.ctx, workflow.LedgerPrefix+d.ID.String()+".json")
			require.NoError(t, err)
			require.True(t, ledger)

			// A duplicated purge event changes nothing.
			require.NoError(t, h.w.PurgeOwnStores(h.ctx, a, d.ID))
			again, err := h.store.GetDeletion(h.ctx, a, d.ID)
			require.NoError(t, err)
			require.Equal(t, got.Certificate, again.Certificate)
		})
	}
}
