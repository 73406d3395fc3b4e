package events

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/forgeapps/backbone/pkg/database"
	pkgevents "github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/postgres"
)

// PurgeStore is the name of the sandbox origin's store in the purge registry.
const PurgeStore = "sandbox-origin.postgres"

// StatusConsumer is the durable consumer of account statuses. It makes a status survive the
// replicas: a replica that was not running when tenant announced a deletion still refuses the
// owner's apps.
func StatusConsumer() pkgevents.ConsumerConfig {
	return pkgevents.ConsumerConfig{
		Stream:   pkgevents.StreamTenant,
		Durable:  workload.SandboxOrigin,
		Subjects: []string{pkgevents.SubjectAccountStatusChanged},
	}
}

// PurgeConsumer is the durable consumer of the hard delete.
func PurgeConsumer() pkgevents.ConsumerConfig {
	return pkgevents.ConsumerConfig{
		Stream:   pkgevents.StreamLifecycle,
		Durable:  workload.SandboxOrigin,
		Subjects: []string{pkgevents.SubjectPurgeRequested},
	}
}

// Durable runs the durable consumers.
type Durable struct {
	JS     jetstream.JetStream
	DB     *database.DB
	Store  *postgres.Store
	Outbox *pkgevents.Outbox
	Cache  Cache
	Logger *slog.Logger
}

// Run runs both consumers until ctx ends.
func (d *Durable) Run(ctx context.Context) error {
	errs := make(chan error, 2)
	status := StatusConsumer()
	status.Handler, status.DeadLetter, status.Logger = d.status, d.deadLetter, d.Logger
	purge := PurgeConsumer()
	purge.Handler, purge.DeadLetter, purge.Logger = d.purge, d.deadLetter, d.Logger
	go func() { errs <- pkgevents.Consume(ctx, d.JS, status) }()
	go func() { errs <- pkgevents.Consume(ctx, d.JS, purge) }()
	err1, err2 := <-errs, <-errs
	if err1 != nil {
		return err1
	}
	return err2
}

// status records an owner's announced status. It keeps no inbox record: RecordStatus is
// idempotent by itself (an announcement older than the recorded one changes nothing), and an
// inbox row would outlive a purge. A `purged` announcement records nothing (RecordStatus
// deletes the status) and also deletes any inbox record an earlier version of this consumer
// left: it usually arrives after this service's own purge, which must not be undone.
func (d *Durable) status(ctx context.Context, dl pkgevents.Delivery) error {
	ev, ok := dl.Event.(*eventsv1.AccountStatusChanged)
	if !ok {
		return nil
	}
	err := d.DB.Tx(ctx, dl.Owner.ID, func(ctx context.Context, tx database.Tx) error {
		if err := d.Store.RecordStatus(ctx, tx, dl.Owner.ID, ev.GetStatus(), ev.GetMeta().GetOccurTime().AsTime()); err != nil {
			return err
		}
		if ev.GetStatus() == postgres.StatusPurged {
			_, err := pkgevents.PurgeInbox(ctx, tx, dl.Owner.ID)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.Cache.InvalidateOwner(dl.Owner.ID)
	return nil
}

// purge deletes every row of the owner in the sandbox schema and reports it. It is idempotent
// without an inbox record (the inbox rows are the tenant's too, and go with the rest): a
// second run deletes nothing and reports again with 0 rows; data-lifecycle keeps each store's
// first report.
func (d *Durable) purge(ctx context.Context, dl pkgevents.Delivery) error {
	ev, ok := dl.Event.(*eventsv1.PurgeRequested)
	if !ok {
		return nil
	}
	err := d.DB.Tx(ctx, dl.Owner.ID, func(ctx context.Context, tx database.Tx) error {
		n, err := d.Store.PurgeOwner(ctx, tx, dl.Owner.ID)
		if err != nil {
			return err
		}
		m, err := pkgevents.PurgeInbox(ctx, tx, dl.Owner.ID)
		if err != nil {
			return err
		}
		dead, err := pkgevents.PurgeDeadLetters(ctx, tx, dl.Owner.ID)
		if err != nil {
			return err
		}
		_, err = d.Outbox.Enqueue(ctx, tx, &eventsv1.PurgeStoreCompleted{
			Meta:        &eventsv1.EventMeta{OwnerId: dl.Owner.ID.String()},
			DeletionId:  ev.GetDeletionId(),
			Store:       PurgeStore,
			RowsDeleted: n + m + dead,
		})
		if err != nil {
			return fmt.Errorf("purge: report: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.Cache.InvalidateOwner(dl.Owner.ID)
	return nil
}

// deadLetter keeps what a consumer gave up on in event_dead_letters (pkg/events has logged
// and counted it); the purge deletes the owner's with the rest.
func (d *Durable) deadLetter(ctx context.Context, dl pkgevents.DeadLetter) error {
	return pkgevents.RecordDeadLetter(ctx, d.DB, dl)
}
