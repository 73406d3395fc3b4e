// Package events holds the vault's event consumers: the purge of a tenant (shred its keys and
// rows, then report completion through the outbox) and the deletion of an app (delete its
// secrets, in case apps crashed between its commit and its UnregisterApp call). Both are
// idempotent: handling an event twice has the effect of handling it once.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/forgeapps/backbone/pkg/database"
	forgeevents "github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/telemetry"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// Durable is the vault's durable consumer name on every stream (and its inbox key).
const Durable = "secrets-vault"

// Store is the vault's store name in the purge registry and in PurgeStoreCompleted.
const Store = "secrets-vault"

// Consumers handles the events the vault reacts to.
type Consumers struct {
	DB     *database.DB
	Outbox *forgeevents.Outbox
	Vault  *vault.Vault
	Logger *slog.Logger
	// Self is the vault's workload ID, recorded as the actor of event-driven work.
	Self string
	// BackOff overrides the redelivery schedule (tests); nil keeps the default.
	BackOff []time.Duration
	// Telemetry, when set, traces each handled event.
	Telemetry *telemetry.Providers
}

// PurgeConfig is the durable consumer of lifecycle.purge.requested.
func (c *Consumers) PurgeConfig() forgeevents.ConsumerConfig {
	return c.config(forgeevents.StreamLifecycle, forgeevents.SubjectPurgeRequested, c.handlePurge)
}

// AppDeletedConfig is the durable consumer of apps.app.deleted.
func (c *Consumers) AppDeletedConfig() forgeevents.ConsumerConfig {
	return c.config(forgeevents.StreamApps, forgeevents.SubjectAppDeleted, c.handleAppDeleted)
}

func (c *Consumers) config(stream, subject string, h forgeevents.Handler) forgeevents.ConsumerConfig {
	cfg := forgeevents.ConsumerConfig{
		Stream:     stream,
		Durable:    Durable,
		Subjects:   []string{subject},
		Handler:    h,
		DeadLetter: c.deadLetter,
		Logger:     c.Logger,
		BackOff:    c.BackOff,
	}
	if c.Telemetry != nil {
		cfg.Tracer, cfg.Meter, cfg.Propagator = c.Telemetry.Tracer, c.Telemetry.Meter, c.Telemetry.Propagator
	}
	return cfg
}

// Run consumes both subjects until ctx ends.
func (c *Consumers) Run(ctx context.Context, js jetstream.JetStream) error {
	errs := make(chan error, 2)
	go func() { errs <- forgeevents.Consume(ctx, js, c.PurgeConfig()) }()
	go func() { errs <- forgeevents.Consume(ctx, js, c.AppDeletedConfig()) }()
	return errors.Join(<-errs, <-errs)
}

// handlePurge shreds the tenant (idempotent and resumable by itself), deletes the owner's
// inbox records and announces completion through the outbox, in one transaction. It keeps no
// inbox record of its own: an inbox row would be a row of the purged tenant left behind. The
// end state (the tombstone, nothing else) is its own proof, so a redelivery finds nothing
// left, announces completion again with the same cumulative totals the tombstone records,
// and data-lifecycle keeps the first report of each store.
func (c *Consumers) handlePurge(ctx context.Context, d forgeevents.Delivery) error {
	ev, ok := d.Event.(*eventsv1.PurgeRequested)
	if !ok {
		return fmt.Errorf("purge consumer: unexpected event %s", d.Type.Name)
	}
	res, err := c.Vault.Shred(ctx, d.Owner.ID)
	if err != nil {
		return err
	}
	return c.DB.Tx(ctx, d.Owner.ID, func(ctx context.Context, tx database.Tx) error {
		n, err := forgeevents.PurgeInbox(ctx, tx, d.Owner.ID)
		if err != nil {
			return fmt.Errorf("purge consumer: %w", err)
		}
		dead, err := forgeevents.PurgeDeadLetters(ctx, tx, d.Owner.ID)
		if err != nil {
			return fmt.Errorf("purge consumer: %w", err)
		}
		n += dead
		_, err = c.Outbox.Enqueue(ctx, tx, &eventsv1.PurgeStoreCompleted{
			Meta:                 &eventsv1.EventMeta{OwnerId: d.Owner.ID.String()},
			DeletionId:           ev.GetDeletionId(),
			Store:                Store,
			RowsDeleted:          res.RowsDeleted + n,
			KeyVersionsDestroyed: res.Destroyed,
		})
		return err
	})
}

// handleAppDeleted deletes the app's secrets and registration. Unregistering is idempotent in
// itself (an app ID is never reused), so a redelivery finds nothing left to delete.
func (c *Consumers) handleAppDeleted(ctx context.Context, d forgeevents.Delivery) error {
	ev, ok := d.Event.(*eventsv1.AppDeleted)
	if !ok {
		return fmt.Errorf("app consumer: unexpected event %s", d.Type.Name)
	}
	appID, err := uuid.Parse(ev.GetAppId())
	if err != nil {
		return fmt.Errorf("app consumer: app_id: %w", err)
	}
	self := c.Self
	if self == "" {
		self = workload.SecretsVault
	}
	_, err = c.Vault.UnregisterApp(ctx, d.Owner.ID, vault.Actor{Workload: self, Purpose: vault.PurposeSecretManagement}, appID)
	return err
}

// deadLetter keeps an event that will not be handled in event_dead_letters (pkg/events has
// logged and counted it): for a purge it means a tenant's keys may still exist, which
// data-lifecycle sees as a store that never reported (and retries through ShredTenant).
func (c *Consumers) deadLetter(ctx context.Context, dl forgeevents.DeadLetter) error {
	return forgeevents.RecordDeadLetter(ctx, c.DB, dl)
}

func (c *Consumers) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}
