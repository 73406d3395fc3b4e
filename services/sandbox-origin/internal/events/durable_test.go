package events_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

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
// still refuses the owner), and the purge deletes every row of the owner in the schema and
// reports it through the outbox, twice without harm.
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

	gone, kept := owner.New(), owner.New()
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

	publish(t, s.JetStream, gone, &eventsv1.AccountStatusChanged{Meta: &eventsv1.EventMeta{}, Status: postgres.StatusDeletionPending})
	require.Eventually(t, func() bool {
		served, err := s.Store.Served(ctx, gone)
		require.NoError(t, err)
		return !served
	}, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return count("inbox", gone) == 1 }, 10*time.Second, 20*time.Millisecond,
		"the durable consumer recorded the event it applied")

	for range 2 {
		publish(t, s.JetStream, gone, &eventsv1.PurgeRequested{Meta: &eventsv1.EventMeta{}, DeletionId: uuid.NewString()})
	}
	require.Eventually(t, func() bool {
		var reports int
		require.NoError(t, s.PG.Migrator.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE owner_id = $1 AND subject = $2`,
			gone, "lifecycle.purge.completed."+sandboxevents.PurgeStore).Scan(&reports))
		return reports == 2
	}, 10*time.Second, 20*time.Millisecond)
	for _, table := range []string{"view_tickets", "proxy_calls", "owner_status", "inbox"} {
		require.Zero(t, count(table, gone), table)
	}
	require.Equal(t, 1, count("view_tickets", kept))
	require.Equal(t, 1, count("proxy_calls", kept))
}
