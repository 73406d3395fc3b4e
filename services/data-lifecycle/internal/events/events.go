// Package events runs data-lifecycle's durable consumers: the export worker
// (lifecycle.export.requested), its own store's purge (lifecycle.purge.requested) and the
// purge tracker (lifecycle.purge.completed.>). Each is idempotent through the state it reads
// in Postgres first, so a redelivered or duplicated event changes nothing.
package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"
)

// The durable consumer names (listed in events.DurableConsumers).
const (
	DurableExport         = "data-lifecycle-export"
	DurablePurge          = "data-lifecycle-purge"
	DurablePurgeCompleted = "data-lifecycle-purge-completed"
)

// Consumers builds the three consumer configurations; their dead letters are kept in db.
func Consumers(w *workflow.Workflows, db *database.DB, log *slog.Logger) []events.ConsumerConfig {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	deadLetter := func(ctx context.Context, dl events.DeadLetter) error {
		// Nothing is forgotten: the dead letter is kept (event_dead_letters) and logged; an
		// export whose deliveries ran out is marked failed (the owner sees it and asks again);
		// a purge is fanned out again by the scheduler until every store reports.
		if err := events.RecordDeadLetter(ctx, db, dl); err != nil {
			return err
		}
		o, err := owner.Parse(dl.OwnerID)
		if err != nil || dl.Consumer != DurableExport || dl.Reason != events.ReasonMaxDeliveries {
			return nil
		}
		ev := &eventsv1.ExportRequested{}
		if err := proto.Unmarshal(dl.Data, ev); err != nil {
			return nil
		}
		id, err := uuid.Parse(ev.GetExportId())
		if err != nil {
			return nil
		}
		return w.FailExport(ctx, o, id)
	}
	return []events.ConsumerConfig{
		{
			Stream: events.StreamLifecycle, Durable: DurableExport, Subjects: []string{events.SubjectExportRequested},
			// An export can take long; the consumer keeps the message in progress meanwhile.
			HandlerTimeout: 2 * time.Hour,
			MaxDeliver:     6,
			BackOff:        []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute},
			Logger:         log,
			DeadLetter:     deadLetter,
			Handler: func(ctx context.Context, d events.Delivery) error {
				ev, ok := d.Event.(*eventsv1.ExportRequested)
				if !ok {
					return fmt.Errorf("unexpected %s", d.Type.Name)
				}
				id, err := uuid.Parse(ev.GetExportId())
				if err != nil {
					return err
				}
				return w.RunExport(ctx, d.Owner, id)
			},
		},
		{
			Stream: events.StreamLifecycle, Durable: DurablePurge, Subjects: []string{events.SubjectPurgeRequested},
			Logger: log, DeadLetter: deadLetter,
			Handler: func(ctx context.Context, d events.Delivery) error {
				ev, ok := d.Event.(*eventsv1.PurgeRequested)
				if !ok {
					return fmt.Errorf("unexpected %s", d.Type.Name)
				}
				id, err := uuid.Parse(ev.GetDeletionId())
				if err != nil {
					return err
				}
				return w.PurgeOwnStores(ctx, d.Owner.ID, id)
			},
		},
		{
			Stream: events.StreamLifecycle, Durable: DurablePurgeCompleted, Subjects: []string{events.SubjectPurgeCompleted},
			Logger: log, DeadLetter: deadLetter,
			Handler: func(ctx context.Context, d events.Delivery) error {
				ev, ok := d.Event.(*eventsv1.PurgeStoreCompleted)
				if !ok {
					return fmt.Errorf("unexpected %s", d.Type.Name)
				}
				id, err := uuid.Parse(ev.GetDeletionId())
				if err != nil {
					return err
				}
				return w.Report(ctx, d.Owner.ID, id, lifecycle.StoreReport{
					Store: ev.GetStore(), RowsDeleted: ev.GetRowsDeleted(), ObjectsDeleted: ev.GetObjectsDeleted(),
					KeyVersionsDestroyed: ev.GetKeyVersionsDestroyed(),
				})
			},
		},
	}
}

// Run runs every consumer until ctx ends.
func Run(ctx context.Context, js jetstream.JetStream, cfgs []events.ConsumerConfig) error {
	errs := make(chan error, len(cfgs))
	for _, c := range cfgs {
		go func() { errs <- events.Consume(ctx, js, c) }()
	}
	var first error
	for range cfgs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
