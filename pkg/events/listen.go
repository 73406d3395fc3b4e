package events

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/forgeapps/backbone/pkg/database"
)

// Outbox rows announce themselves: a statement trigger on the outbox table runs
// pg_notify(<channel>, '') and Postgres delivers the notification when (and only if) the
// inserting transaction commits. The channel is per schema, so relays of other services
// sharing a database are not woken. Polling remains the safety net for a lost connection.

// channelQuery computes the channel name for the schema the runtime pool resolves `outbox`
// in; the trigger computes the same from TG_TABLE_SCHEMA (channel names are identifiers,
// hence the cut at 63 bytes).
const channelQuery = `SELECT left('forge_outbox.' || current_schema(), 63)`

// listen keeps a LISTEN connection open and signals wake after each notification, and once
// after each (re)connection, since rows may have been committed while it was not listening.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	if r.cfg.ListenURL == "" {
		return
	}
	down := outage{log: r.log, what: "outbox listen"}
	bo := backoff{min: 100 * time.Millisecond, max: r.cfg.MaxBackoff}
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, wake, &down, &bo)
		if ctx.Err() != nil {
			return
		}
		down.fail(ctx, err)
		sleepCtx(ctx, bo.next())
	}
}

func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}, down *outage, bo *backoff) error {
	var channel string
	err := r.cfg.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, channelQuery).Scan(&channel)
	})
	if err != nil {
		return fmt.Errorf("postgres channel name: %w", err)
	}
	conn, err := pgx.Connect(ctx, r.cfg.ListenURL)
	if err != nil {
		return fmt.Errorf("postgres listen connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("postgres listen: %w", err)
	}
	down.ok(ctx)
	bo.reset()
	signal(wake)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("postgres wait for notification: %w", err)
		}
		signal(wake)
	}
}

// signal wakes the relay loop without blocking; one pending wake-up is enough.
func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
