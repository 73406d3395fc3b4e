// Package events runs the apps service's event consumer: the purge of an owner, fanned out by
// data-lifecycle on lifecycle.purge.requested. It disables the owner, deletes its objects and
// rows in bounded batches and reports PurgeStoreCompleted{store: "apps"} through the outbox.
package events

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	forgeevents "github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

// Durable is the consumer's durable name, as listed in events.DurableConsumers.
const Durable = "apps"

// PurgeConsumer applies lifecycle.purge.requested.
type PurgeConsumer struct {
	svc    *apps.Service
	logger *slog.Logger
}

// NewPurgeConsumer returns the consumer.
func NewPurgeConsumer(svc *apps.Service, logger *slog.Logger) *PurgeConsumer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PurgeConsumer{svc: svc, logger: logger}
}

// Config is the consumer configuration to pass to events.Consume. It leaves DeadLetter to
// the caller, which keeps what the consumer gives up on with events.RecordDeadLetter: under
// its owner, in event_dead_letters, which the purge deletes with the rest.
func (c *PurgeConsumer) Config() forgeevents.ConsumerConfig {
	return forgeevents.ConsumerConfig{
		Stream:   forgeevents.StreamLifecycle,
		Durable:  Durable,
		Subjects: []string{forgeevents.SubjectPurgeRequested},
		Handler:  c.Handle,
		Logger:   c.logger,
	}
}

// Handle purges the event's owner. It is idempotent without an inbox record: the purge's end
// state (nothing of the owner left) is its own proof, so a redelivered event finds nothing and
// reports completion again with 0 rows and 0 objects. An inbox row would itself be a row of
// the purged owner left behind. A crash between batches resumes where the committed batches
// stopped.
func (c *PurgeConsumer) Handle(ctx context.Context, d forgeevents.Delivery) error {
	req, ok := d.Event.(*eventsv1.PurgeRequested)
	if !ok {
		return fmt.Errorf("purge consumer: unexpected event %s", d.Type.Name)
	}
	deletionID, err := uuid.Parse(req.GetDeletionId())
	if err != nil {
		return fmt.Errorf("purge consumer: deletion id: %w", err)
	}
	if err := c.svc.Purge(ctx, d.Owner.ID, deletionID); err != nil {
		return fmt.Errorf("purge %s: %w", deletionID, err)
	}
	c.logger.InfoContext(ctx, "owner purged", slog.String("owner_id", d.Owner.ID.String()),
		slog.String("deletion_id", deletionID.String()))
	return nil
}
