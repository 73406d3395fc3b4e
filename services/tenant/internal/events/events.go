// Package events runs the tenant service's event consumers. There is one: the purge of a
// tenant, fanned out by data-lifecycle on lifecycle.purge.requested. It deletes the tenant's
// rows in bounded batches and reports PurgeStoreCompleted{store: "tenant"} through the outbox,
// in the transaction of the last batch.
package events

import (
	"context"
	"fmt"
	"log/slog"

	forgeevents "github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"

	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
)

// Durable is the consumer's durable name (one per service, as the brief of the stream asks).
const Durable = "tenant"

// Store is the purge store's name in the purge registry and in the completion subject.
const Store = "tenant"

// PurgeConsumer applies lifecycle.purge.requested.
type PurgeConsumer struct {
	store     *postgres.Store
	batchSize int
	logger    *slog.Logger
}

// NewPurgeConsumer returns the consumer; batchSize bounds the rows of one transaction.
func NewPurgeConsumer(store *postgres.Store, batchSize int, logger *slog.Logger) *PurgeConsumer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PurgeConsumer{store: store, batchSize: batchSize, logger: logger}
}

// Config is the consumer configuration to pass to events.Consume. It leaves DeadLetter to
// the caller, which keeps what the consumer gives up on with events.RecordDeadLetter: under
// its tenant, in event_dead_letters, which the purge deletes with the rest.
func (c *PurgeConsumer) Config() forgeevents.ConsumerConfig {
	return forgeevents.ConsumerConfig{
		Stream:   forgeevents.StreamLifecycle,
		Durable:  Durable,
		Subjects: []string{forgeevents.SubjectPurgeRequested},
		Handler:  c.Handle,
		Logger:   c.logger,
	}
}

// Handle purges the event's tenant. It is idempotent without an inbox record: the purge's
// end state (nothing of the tenant left) is its own proof, so a redelivered event finds the
// tenant gone and reports completion again with 0 rows. (An inbox row would itself be a row
// of the tenant left behind.) A crash between batches resumes where the committed batches
// stopped; rows_deleted then counts this delivery's rows only.
func (c *PurgeConsumer) Handle(ctx context.Context, d forgeevents.Delivery) error {
	req, ok := d.Event.(*eventsv1.PurgeRequested)
	if !ok {
		return fmt.Errorf("purge consumer: unexpected event %s", d.Type.Name)
	}
	var total int64
	for {
		res, err := c.store.PurgeBatch(ctx, d.Owner.ID, c.batchSize, func(rows int64) forgeevents.Event {
			return &eventsv1.PurgeStoreCompleted{
				Meta:        &eventsv1.EventMeta{OwnerId: d.Owner.ID.String()},
				DeletionId:  req.GetDeletionId(),
				Store:       Store,
				RowsDeleted: total + rows,
			}
		})
		if err != nil {
			return fmt.Errorf("purge %s: %w", req.GetDeletionId(), err)
		}
		total += res.RowsDeleted
		if res.Done {
			c.logger.InfoContext(ctx, "tenant purged", slog.String("owner_id", d.Owner.ID.String()),
				slog.String("deletion_id", req.GetDeletionId()), slog.Int64("rows_deleted", total))
			return nil
		}
	}
}
