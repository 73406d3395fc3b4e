package events_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	pkgevents "github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	sandboxevents "github.com/forgeapps/backbone/services/sandbox-origin/internal/events"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/postgres"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/sandboxtest"
)

// TestDurableConsumers: the account status survives in Postgres (a replica started later
// still refuses the owner); the purge deletes every row of the owner in the schema and
// reports it through the outbox, twice without harm; and the `purged` announcement, before or
// after the purge, leaves no row of the owner: no status, no inbox record.
func TestDurableConsumers(t *testing.T) {
	s := sandboxtest.Start(t, sandboxtest.Options{Events: true})
	outbox, err := pkgevents.NewOutbox(pkgevents.OutboxConfig{Region: owner.DefaultRegion})
	require.NoError(t, err)
	d := &sandboxevents.Durable{JS: s.JetStream, DB: s.PG.DB, Store: s.Store, Outbox: outbox, Cache: s.Cache,
		Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	// gone is purged and then announced purged; early is announced purged first (tenant's
	// purge can finish before this one runs); kept stays.
	gone, early, kept := owner.New(), owner.New(), owner.New()
	for _, o := range []owner.ID{gone, kept} {
		_, hash, err := origin.NewTicket()
		require.NoError(t, err)
		require.NoError(t, s.Store.IssueTicket(ctx, o, hash, uuid.New(), o, time.Now().Add(time.Minute)))
		require.NoError(t, s.Store.AuditCall(ctx, proxy.Record{App: uuid.New(), Owner: o, SecretName: "api", Outcome: proxy.OutcomeOK}))
	}
	count := func(table string, o owner.ID) int {
		var n int
		require.NoError(t, s.PG.Migrator.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE owner_id = $1", o).Scan(&n))
		return n
	}
	// rowsOf counts the owner's rows in every table of the schema that has an owner_id, read
	// from the catalog so a table added later is counted too.
	rowsOf := func(o owner.ID) map[string]int {
		rows, err := s.PG.Migrator.Query(ctx, `SELECT c.relname FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace
			JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'owner_id' AND NOT a.attisdropped
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`, postgres.Schema)
		require.NoError(t, err)
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Contains(t, tables, "inbox")
		out := map[string]int{}
		for _, tbl := range tables {
			if n := count(tbl, o); n > 0 {
				out[tbl] = n
			}
		}
		return out
	}
	pending := func(o owner.ID) {
		publish(t, s.JetStream, o, &eventsv1.AccountStatusChanged{Meta: &eventsv1.EventMeta{}, Status: postgres.StatusDeletionPending})
		require.Eventually(t, func() bool {
			served, err := s.Store.Served(ctx, o)
			require.NoError(t, err)
			return !served
		}, 10*time.Second, 20*time.Millisecond)
	}

	pending(gone)
	pending(early)
	require.Equal(t, 1, count("owner_status", gone))
	require.Zero(t, count("inbox", gone), "a status is recorded without an inbox record (it converges by its time)")

	// A purged announcement before this service's purge: the status goes (and an inbox
	// record an earlier version of the consumer wrote).
	_, err = s.PG.Migrator.Exec(ctx, `INSERT INTO inbox (owner_id, consumer, event_id) VALUES ($1, $2, $3)`,
		early, "sandbox-origin", uuid.New())
	require.NoError(t, err)
	publish(t, s.JetStream, early, &eventsv1.AccountStatusChanged{Meta: &eventsv1.EventMeta{}, Status: postgres.StatusPurged})
	require.Eventually(t, func() bool { return len(rowsOf(early)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the purged announcement leaves no row of the owner")

	for range 2 {
		publish(t, s.JetStream, gone, &eventsv1.PurgeRequested{Meta: &eventsv1.EventMeta{}, DeletionId: uuid.NewString()})
	}
	require.Eventually(t, func() bool { return count("outbox", gone) == 2 }, 10*time.Second, 20*time.Millisecond)
	var reports []int64
	rows, err := s.PG.Migrator.Query(ctx, `SELECT payload FROM outbox WHERE owner_id = $1 AND subject = $2 ORDER BY id`,
		gone, "lifecycle.purge.completed."+sandboxevents.PurgeStore)
	require.NoError(t, err)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	for _, p := range payloads {
		var ev eventsv1.PurgeStoreCompleted
		require.NoError(t, proto.Unmarshal(p, &ev))
		reports = append(reports, ev.GetRowsDeleted())
	}
	require.Equal(t, []int64{3, 0}, reports, "ticket, call and status; the redelivery finds nothing and reports 0")

	// The purged announcement after the purge: nothing is recorded again. kept's status,
	// published after it on the same consumer, marks that it was handled.
	publish(t, s.JetStream, gone, &eventsv1.AccountStatusChanged{Meta: &eventsv1.EventMeta{}, Status: postgres.StatusPurged})
	pending(kept)
	require.Equal(t, map[string]int{"outbox": 2}, rowsOf(gone), "only the reports, until the relay publishes them")
	require.Equal(t, 1, count("view_tickets", kept))
	require.Equal(t, 1, count("proxy_calls", kept))
	require.Equal(t, 1, count("owner_status", kept))
}
