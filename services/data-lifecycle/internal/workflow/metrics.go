package workflow

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
)

type metrics struct {
	purgeRetries   metric.Int64Counter
	purgesComplete metric.Int64Counter
	exports        metric.Int64Counter
	reconcileFails metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider, store *postgres.Store, clock lifecycle.Clock, overdue time.Duration) (*metrics, error) {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter("github.com/forgeapps/backbone/services/data-lifecycle")
	var out metrics
	var err error
	if out.purgeRetries, err = m.Int64Counter("forge.lifecycle.purge.retries",
		metric.WithDescription("Purges fanned out again because a store had not reported.")); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if out.purgesComplete, err = m.Int64Counter("forge.lifecycle.purge.completed",
		metric.WithDescription("Purges completed with a signed certificate.")); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if out.exports, err = m.Int64Counter("forge.lifecycle.exports",
		metric.WithDescription("Export attempts by outcome.")); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if out.reconcileFails, err = m.Int64Counter("forge.lifecycle.reconcile.failures",
		metric.WithDescription("Downstream disable or restore steps that failed and will be retried.")); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// Incomplete purges are read from Postgres at each collection: a purge nobody retries
	// still shows up, as "overdue".
	purging, err := m.Int64ObservableGauge("forge.lifecycle.purge.incomplete",
		metric.WithDescription("Purges under way; overdue=true for those not complete within the retry interval."))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		all, late, err := store.PurgeStatus(ctx, clock.Now().Add(-overdue))
		if err != nil {
			return err
		}
		o.ObserveInt64(purging, all-late, metric.WithAttributes(attrOverdue(false)))
		o.ObserveInt64(purging, late, metric.WithAttributes(attrOverdue(true)))
		return nil
	}, purging)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return &out, nil
}

func attrOverdue(b bool) attribute.KeyValue { return attribute.Bool("overdue", b) }

func attrOutcome(s string) attribute.KeyValue { return attribute.String("outcome", s) }
