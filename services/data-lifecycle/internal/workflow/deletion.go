package workflow

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
)

// RequestDeletion records the deletion and tries its disable steps at once; when a service
// does not answer, the deletion says so (account_disabled false) and the reconciler retries
// until every step is applied. The receipt token is returned once, never stored.
func (w *Workflows) RequestDeletion(ctx context.Context, o owner.Owner) (postgres.Deletion, secret.Value, error) {
	tok, hash, err := lifecycle.NewToken(lifecycle.ReceiptPrefix)
	if err != nil {
		return postgres.Deletion{}, secret.Value{}, err
	}
	d, err := w.cfg.Store.RequestDeletion(ctx, o, hash, w.cfg.Clock.Now())
	if err != nil {
		return postgres.Deletion{}, secret.Value{}, err
	}
	if rd, err := w.reconcile(ctx, d.Owner, d.ID); err != nil {
		w.log.WarnContext(ctx, "deletion: disable steps failed; the reconciler retries them",
			slog.String("deletion_id", d.ID.String()), slog.Any("error", err))
	} else {
		d = rd
	}
	return d, tok, nil
}

// CancelDeletion cancels the owner's pending deletion before it is due and restores the
// account (retried by the reconciler when tenant does not answer).
func (w *Workflows) CancelDeletion(ctx context.Context, o owner.Owner) (postgres.Deletion, error) {
	d, err := w.cfg.Store.CancelDeletion(ctx, o, w.cfg.Clock.Now())
	if err != nil {
		return postgres.Deletion{}, err
	}
	if rd, err := w.reconcile(ctx, d.Owner, d.ID); err != nil {
		w.log.WarnContext(ctx, "deletion: restore failed; the reconciler retries it",
			slog.String("deletion_id", d.ID.String()), slog.Any("error", err))
	} else {
		d = rd
	}
	return d, nil
}

// reconcile applies what a deletion's state asks of the other services, under the deletion's
// row lock: pending and not yet disabled -> DisableTenant and DisableOwner (both idempotent);
// cancelled and not yet restored -> RestoreTenant and RestoreOwner. Listings and share links removed at the
// request stay removed after a cancel: the owner re-shares.
func (w *Workflows) reconcile(ctx context.Context, o owner.ID, id uuid.UUID) (postgres.Deletion, error) {
	sys := system(ctx)
	return w.cfg.Store.WithDeletion(ctx, o, id, func(ctx context.Context, d postgres.Deletion) (postgres.Update, error) {
		cctx, cancel := context.WithTimeout(sys, w.cfg.CallTimeout)
		defer cancel()
		switch {
		case d.State == lifecycle.DeletionPending && d.Disabled == nil:
			if _, err := w.cfg.Tenant.DisableTenant(cctx, &tenantv1.DisableTenantRequest{OwnerId: o.String()}); err != nil {
				w.metrics.reconcileFails.Add(ctx, 1, metric.WithAttributes(attrOutcome("disable_tenant")))
				return postgres.Update{}, fmt.Errorf("tenant DisableTenant: %w", err)
			}
			if _, err := w.cfg.Apps.DisableOwner(cctx, &appsv1.DisableOwnerRequest{OwnerId: o.String()}); err != nil {
				w.metrics.reconcileFails.Add(ctx, 1, metric.WithAttributes(attrOutcome("disable_owner")))
				return postgres.Update{}, fmt.Errorf("apps DisableOwner: %w", err)
			}
			now := w.cfg.Clock.Now()
			return postgres.Update{Disabled: &now}, nil
		case d.State == lifecycle.DeletionCancelled && d.Restored == nil:
			if _, err := w.cfg.Tenant.RestoreTenant(cctx, &tenantv1.RestoreTenantRequest{OwnerId: o.String()}); err != nil {
				w.metrics.reconcileFails.Add(ctx, 1, metric.WithAttributes(attrOutcome("restore_tenant")))
				return postgres.Update{}, fmt.Errorf("tenant RestoreTenant: %w", err)
			}
			if _, err := w.cfg.Apps.RestoreOwner(cctx, &appsv1.RestoreOwnerRequest{OwnerId: o.String()}); err != nil {
				w.metrics.reconcileFails.Add(ctx, 1, metric.WithAttributes(attrOutcome("restore_owner")))
				return postgres.Update{}, fmt.Errorf("apps RestoreOwner: %w", err)
			}
			now := w.cfg.Clock.Now()
			return postgres.Update{Restored: &now}, nil
		}
		return postgres.Update{}, nil
	})
}

// Tick runs one round of the scheduler: claim due purges, reconcile deletions whose
// downstream steps are not applied, fan out again purges that went quiet, expire archives.
// Every replica may run it: each row is claimed in Postgres, once.
func (w *Workflows) Tick(ctx context.Context) error {
	now := w.cfg.Clock.Now()
	due, err := w.cfg.Store.DueDeletions(ctx, now, 100)
	if err != nil {
		return fmt.Errorf("scheduler: due: %w", err)
	}
	for _, r := range due {
		ok, err := w.cfg.Store.ClaimPurge(ctx, r.Owner, r.ID, lifecycle.StoreNames(), now)
		if err != nil {
			return fmt.Errorf("scheduler: claim: %w", err)
		}
		if ok {
			w.log.InfoContext(ctx, "purge started", slog.String("deletion_id", r.ID.String()))
		}
	}
	stale := now.Add(-w.cfg.PurgeRetryAfter)
	refs, err := w.cfg.Store.DeletionsToReconcile(ctx, stale, 100)
	if err != nil {
		return fmt.Errorf("scheduler: reconcile: %w", err)
	}
	for _, r := range refs {
		if r.State == lifecycle.DeletionPurging {
			ok, err := w.cfg.Store.RetryPurge(ctx, r.Owner, r.ID, stale, now)
			if err != nil {
				return fmt.Errorf("scheduler: retry purge: %w", err)
			}
			if ok {
				w.metrics.purgeRetries.Add(ctx, 1)
				w.log.WarnContext(ctx, "purge incomplete; fanned out again", slog.String("deletion_id", r.ID.String()))
			}
			continue
		}
		if _, err := w.reconcile(ctx, r.Owner, r.ID); err != nil {
			// One tenant's failing step must not hold up the others: logged, retried next tick.
			w.log.WarnContext(ctx, "deletion: downstream step failed; will retry",
				slog.String("deletion_id", r.ID.String()), slog.Any("error", err))
		}
	}
	return w.ExpireExports(ctx)
}

// RunScheduler ticks every interval until ctx ends. Errors are logged and retried at the next
// tick (Postgres restarting is an outage, not a reason to stop the service).
func (w *Workflows) RunScheduler(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := w.Tick(ctx); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "scheduler tick failed", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
