package events

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"
)

const nilOwner = "00000000-0000-0000-0000-000000000000"

func TestRecordDeadLetter(t *testing.T) {
	env := newPG(t)
	ctx := context.Background()
	a, b := owner.New(), owner.New()
	letter := func(ownerID string, seq uint64) DeadLetter {
		return DeadLetter{Reason: ReasonUndecodable, Detail: "bad", Stream: StreamApps, Consumer: "svc",
			StreamSeq: seq, Deliveries: 1, Subject: SubjectAppAccessChanged, EventType: "forge.events.v1.X",
			EventID: "e", OwnerID: ownerID}
	}
	// visible counts the rows the runtime role sees in o's transaction.
	visible := func(t *testing.T, o owner.ID) int {
		t.Helper()
		var n int
		require.NoError(t, env.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM event_dead_letters`).Scan(&n)
		}))
		return n
	}
	stored := func(t *testing.T, ownerID string) int {
		t.Helper()
		return count(t, env, `SELECT count(*) FROM event_dead_letters WHERE owner_id = $1`, ownerID)
	}

	tests := []struct {
		name string
		dl   DeadLetter
		// under is the owner_id the row must be filed under.
		under string
	}{
		{"owned", letter(a.String(), 1), a.String()},
		{"owned, recorded again", letter(a.String(), 1), a.String()},
		{"owned, another message", letter(a.String(), 2), a.String()},
		{"another owner", letter(b.String(), 1), b.String()},
		{"no owner", letter("", 3), nilOwner},
		{"unparsable owner", letter("not-a-uuid", 4), nilOwner},
		{"the nil UUID is no owner", letter(nilOwner, 5), nilOwner},
		{"NUL bytes and invalid UTF-8 are stored, not retried forever", DeadLetter{
			Reason: ReasonUndecodable, Detail: "a\x00b\xff" + strings.Repeat("é", 3000), Stream: StreamApps,
			Consumer: "svc", StreamSeq: 6, Subject: "x\x00", EventType: "\xfe", EventID: "\x00", OwnerID: a.String(),
		}, a.String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, RecordDeadLetter(ctx, env.DB, tc.dl))
			var n int
			require.NoError(t, env.Migrator.QueryRow(ctx, `SELECT count(*) FROM event_dead_letters
				WHERE owner_id = $1 AND stream = $2 AND consumer = $3 AND stream_seq = $4`,
				tc.under, tc.dl.Stream, tc.dl.Consumer, int64(tc.dl.StreamSeq)).Scan(&n))
			assert.Equal(t, 1, n)
		})
	}

	t.Run("detail is cut to the column's limit on a character boundary", func(t *testing.T) {
		var detail string
		require.NoError(t, env.Migrator.QueryRow(ctx, `SELECT detail FROM event_dead_letters
			WHERE owner_id = $1 AND stream_seq = 6`, a).Scan(&detail))
		assert.True(t, utf8.ValidString(detail))
		assert.LessOrEqual(t, len(detail), maxDeadLetterDetail)
		assert.True(t, strings.HasPrefix(detail, "ab\uFFFDé"), "%q", detail[:10])
	})

	t.Run("each owner sees its own dead letters only", func(t *testing.T) {
		assert.Equal(t, 3, stored(t, a.String()))
		assert.Equal(t, 3, visible(t, a))
		assert.Equal(t, 1, visible(t, b))
	})

	t.Run("no runtime transaction sees the owner-less ones", func(t *testing.T) {
		assert.Equal(t, 3, stored(t, nilOwner))
		var n int
		require.NoError(t, env.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM event_dead_letters`).Scan(&n)
		}))
		assert.Zero(t, n)
		require.ErrorIs(t, env.DB.Tx(ctx, owner.ID{}, func(context.Context, database.Tx) error { return nil }),
			database.ErrNoOwner)
	})

	t.Run("the runtime role cannot file an owner-less row under a tenant itself", func(t *testing.T) {
		err := env.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
			_, err := tx.Exec(ctx, insertDeadLetter, a, StreamApps, "svc", int64(99), "r", "", "", "", "", int64(0))
			return err
		})
		require.Error(t, err, "RLS must refuse a row outside the transaction's owner")
		assert.Equal(t, 3, stored(t, a.String()))
	})

	t.Run("purge deletes the owner's dead letters only", func(t *testing.T) {
		var n int64
		require.NoError(t, env.DB.Tx(ctx, a, func(ctx context.Context, tx database.Tx) error {
			var err error
			n, err = PurgeDeadLetters(ctx, tx, a)
			return err
		}))
		assert.Equal(t, int64(3), n)
		assert.Zero(t, stored(t, a.String()))
		assert.Equal(t, 1, stored(t, b.String()))
		assert.Equal(t, 3, stored(t, nilOwner))
	})
}
