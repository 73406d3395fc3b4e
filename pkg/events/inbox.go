package events

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/owner"
)

// insertInbox records an event as applied. ON CONFLICT DO NOTHING makes the second
// recording a no-op; a concurrent second delivery waits on the first's uncommitted row and
// then inserts nothing.
const insertInbox = `INSERT INTO inbox (owner_id, consumer, event_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`

// MarkProcessed records, in tx, that d's consumer has applied d's event, and reports whether
// this is the first time. Call it first in the handler's owner transaction and apply the
// effect only when it returns true: the record and the effect commit together, so handling
// an event twice has the effect of handling it once, however long after the first time
// (JetStream's Nats-Msg-Id deduplication only covers its window).
//
//	err := db.Tx(ctx, d.Owner.ID, func(tx pgx.Tx) error {
//		first, err := events.MarkProcessed(ctx, tx, d)
//		if err != nil || !first {
//			return err
//		}
//		return applyEffect(ctx, tx, d.Event)
//	})
func MarkProcessed(ctx context.Context, tx Execer, d Delivery) (bool, error) {
	if d.Owner.ID.IsZero() || d.Consumer == "" || d.EventID == uuid.Nil {
		return false, fmt.Errorf("mark processed: %w: delivery without owner, consumer or event id", ErrInvalidEvent)
	}
	tag, err := tx.Exec(ctx, insertInbox, d.Owner.ID, d.Consumer, d.EventID)
	if err != nil {
		return false, fmt.Errorf("mark processed %s: %w", d.EventID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// PurgeInbox deletes the owner's inbox records, for the service's purge of a tenant; run it
// in that owner's transaction.
func PurgeInbox(ctx context.Context, tx Execer, ownerID owner.ID) (int64, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM inbox WHERE owner_id = $1`, ownerID)
	if err != nil {
		return 0, fmt.Errorf("purge inbox: %w", err)
	}
	return tag.RowsAffected(), nil
}
