package events

import (
	"context"
	"fmt"
	"strings"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"
)

// maxDeadLetterDetail is the longest detail event_dead_letters keeps (its CHECK).
const maxDeadLetterDetail = 2000

// insertDeadLetter files a dead letter under its owner, in that owner's transaction (the
// owner policy refuses any other). The same message recorded again changes nothing.
const insertDeadLetter = `INSERT INTO event_dead_letters
	(owner_id, stream, consumer, stream_seq, reason, detail, subject, event_type, event_id, deliveries)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
	ON CONFLICT DO NOTHING`

// insertUnownedDeadLetter goes through the reviewed SECURITY DEFINER function, which files
// the row under the nil UUID (no tenant's).
const insertUnownedDeadLetter = `SELECT dead_letter_unowned($1, $2, $3, $4, $5, $6, $7, $8, $9)`

// RecordDeadLetter keeps dl in the schema's event_dead_letters table (the events migration
// source creates it in every service schema), in a transaction of its own, once per message
// (Stream, Consumer, StreamSeq): a repeated call changes nothing. A dead letter naming a
// parsable owner is filed under that owner, in the owner's transaction, and the owner's purge
// deletes it (PurgeDeadLetters). One naming none is kept through FuncDeadLetterUnowned,
// where no tenant's transaction sees it. The message payload is not kept.
//
// Every service's ConsumerConfig.DeadLetter calls it (after logging, if it wants more).
func RecordDeadLetter(ctx context.Context, db *database.DB, dl DeadLetter) error {
	args := []any{dbText(dl.Stream, 0), dbText(dl.Consumer, 0), int64(dl.StreamSeq), dbText(dl.Reason, 0),
		dbText(dl.Detail, maxDeadLetterDetail), dbText(dl.Subject, 0), dbText(dl.EventType, 0),
		dbText(dl.EventID, 0), int64(dl.Deliveries)}
	id, err := owner.Parse(dl.OwnerID)
	if err != nil {
		err = db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
			_, err := tx.Exec(ctx, insertUnownedDeadLetter, args...)
			return err
		})
	} else {
		err = db.Tx(ctx, id, func(ctx context.Context, tx database.Tx) error {
			_, err := tx.Exec(ctx, insertDeadLetter, append([]any{id}, args...)...)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("record dead letter %s/%s/%d: %w", dl.Stream, dl.Consumer, dl.StreamSeq, err)
	}
	return nil
}

// PurgeDeadLetters deletes the owner's dead letters, for the service's purge of a tenant; run
// it in that owner's transaction.
func PurgeDeadLetters(ctx context.Context, tx Execer, ownerID owner.ID) (int64, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM event_dead_letters WHERE owner_id = $1`, ownerID)
	if err != nil {
		return 0, fmt.Errorf("purge dead letters: %w", err)
	}
	return tag.RowsAffected(), nil
}

// dbText makes s storable as Postgres text: what a dead letter carries comes from a message
// that may be malformed, and a NUL byte or invalid UTF-8 would make the insert fail on every
// retry. max > 0 cuts s to at most max bytes (so at most max characters) on a rune boundary.
func dbText(s string, max int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if max > 0 && len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return s
}
