package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/postgres"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
)

func newStore(t *testing.T) (*postgres.Store, *pgtest.Env) {
	t.Helper()
	env := pgtest.New(t, pgtest.Spec{Schema: postgres.Schema, Sources: []database.Source{
		{Name: events.MigrationSourceName, FS: events.Migrations()},
		{Name: postgres.SourceName, FS: postgres.Migrations()},
	}})
	require.NoError(t, database.CheckPosture(context.Background(), env.DB, database.Posture{
		Schema: postgres.Schema, DefinerFunctions: events.SecurityDefinerFunctions(),
	}))
	return &postgres.Store{DB: env.DB}, env
}

func TestTicketsRedeemOnceAndOnlyForTheirOwner(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	appOwner, other, viewer := owner.New(), owner.New(), owner.New()
	app := uuid.New()
	tk, hash, err := origin.NewTicket()
	require.NoError(t, err)
	_ = tk
	require.NoError(t, s.IssueTicket(ctx, appOwner, hash, app, viewer, time.Now().Add(time.Minute)))

	_, err = s.Redeem(ctx, other, hash)
	require.ErrorIs(t, err, origin.ErrNoTicket, "another owner's transaction cannot see the ticket")

	// Many replicas redeem at once: exactly one gets it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Redeem(ctx, appOwner, hash)
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
				require.Equal(t, app, got.App)
				require.Equal(t, viewer, got.Viewer)
				return
			}
			require.ErrorIs(t, err, origin.ErrNoTicket)
		}()
	}
	wg.Wait()
	require.Equal(t, 1, wins)
}

func TestOwnerStatusLatestWins(t *testing.T) {
	s, env := newStore(t)
	ctx := context.Background()
	o := owner.New()
	record := func(status string, at time.Time) {
		require.NoError(t, env.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
			return s.RecordStatus(ctx, tx, o, status, at)
		}))
	}
	served, err := s.Served(ctx, o)
	require.NoError(t, err)
	require.True(t, served, "no status recorded: served")
	t0 := time.Now()
	record(postgres.StatusDeletionPending, t0)
	served, err = s.Served(ctx, o)
	require.NoError(t, err)
	require.False(t, served)
	record(postgres.StatusActive, t0.Add(-time.Minute)) // a late, older announcement
	served, err = s.Served(ctx, o)
	require.NoError(t, err)
	require.False(t, served, "an older announcement changes nothing")
	record(postgres.StatusActive, t0.Add(time.Minute))
	served, err = s.Served(ctx, o)
	require.NoError(t, err)
	require.True(t, served)
	require.Error(t, env.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		return s.RecordStatus(ctx, tx, o, "whatever", t0)
	}))

	// purged records nothing: it deletes the status, so a purged owner keeps no row here,
	// whether it arrives before or after the purge.
	rows := func() int {
		var n int
		require.NoError(t, env.Migrator.QueryRow(ctx, `SELECT count(*) FROM owner_status WHERE owner_id = $1`, o).Scan(&n))
		return n
	}
	record(postgres.StatusDeletionPending, t0.Add(2*time.Minute))
	require.Equal(t, 1, rows())
	record(postgres.StatusPurged, t0.Add(3*time.Minute))
	require.Zero(t, rows(), "purged deletes the status")
	record(postgres.StatusPurged, t0.Add(3*time.Minute))
	require.Zero(t, rows(), "and creates none when there is none")
}

func TestPurgeOwner(t *testing.T) {
	s, env := newStore(t)
	ctx := context.Background()
	gone, kept := owner.New(), owner.New()
	for _, o := range []owner.ID{gone, kept} {
		_, hash, err := origin.NewTicket()
		require.NoError(t, err)
		require.NoError(t, s.IssueTicket(ctx, o, hash, uuid.New(), o, time.Now().Add(time.Minute)))
		require.NoError(t, s.AuditCall(ctx, proxy.Record{App: uuid.New(), Owner: o, SecretName: "api", Outcome: proxy.OutcomeOK}))
		require.NoError(t, env.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
			return s.RecordStatus(ctx, tx, o, postgres.StatusDeletionPending, time.Now())
		}))
	}
	var n int64
	require.NoError(t, env.DB.Tx(ctx, gone, func(ctx context.Context, tx database.Tx) error {
		var err error
		n, err = s.PurgeOwner(ctx, tx, gone)
		return err
	}))
	require.EqualValues(t, 3, n)
	for _, table := range []string{"view_tickets", "proxy_calls", "owner_status"} {
		var left, other int
		require.NoError(t, env.Migrator.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE owner_id = $1", gone).Scan(&left))
		require.NoError(t, env.Migrator.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE owner_id = $1", kept).Scan(&other))
		require.Zero(t, left, table)
		require.Equal(t, 1, other, table)
	}
}
