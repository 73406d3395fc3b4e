package events

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"
)

func TestMarkProcessedAndPurgeInbox(t *testing.T) {
	env := newPG(t)
	ctx := context.Background()
	a, b := owner.New(), owner.New()
	delivery := func(o owner.ID, consumer string, id uuid.UUID) Delivery {
		return Delivery{Owner: owner.Owner{ID: o, HomeRegion: owner.USEast}, Consumer: consumer, EventID: id}
	}
	mark := func(d Delivery) bool {
		t.Helper()
		var first bool
		require.NoError(t, env.DB.Tx(ctx, d.Owner.ID, func(ctx context.Context, tx database.Tx) error {
			var err error
			first, err = MarkProcessed(ctx, tx, d)
			return err
		}))
		return first
	}
	ev := uuid.New()
	tests := []struct {
		name string
		d    Delivery
		want bool
	}{
		{"first time", delivery(a, "svc", ev), true},
		{"second time", delivery(a, "svc", ev), false},
		{"another consumer of the same event", delivery(a, "other", ev), true},
		{"another tenant's row does not count", delivery(b, "svc", ev), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, mark(tc.d))
		})
	}

	t.Run("refuses a delivery without owner, consumer or event", func(t *testing.T) {
		for _, d := range []Delivery{delivery(a, "", ev), delivery(a, "svc", uuid.Nil), {Consumer: "svc", EventID: ev}} {
			_, err := MarkProcessed(ctx, nil, d)
			require.ErrorIs(t, err, ErrInvalidEvent)
		}
	})

	t.Run("purge deletes the owner's records only", func(t *testing.T) {
		var n int64
		require.NoError(t, env.DB.Tx(ctx, a, func(ctx context.Context, tx database.Tx) error {
			var err error
			n, err = PurgeInbox(ctx, tx, a)
			return err
		}))
		assert.Equal(t, int64(2), n)
		assert.Zero(t, count(t, env, `SELECT count(*) FROM inbox WHERE owner_id = $1`, a))
		assert.Equal(t, 1, count(t, env, `SELECT count(*) FROM inbox WHERE owner_id = $1`, b))
	})
}
