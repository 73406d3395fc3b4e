package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/forgeapps/backbone/pkg/database"
	forgeevents "github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"

	tenantevents "github.com/forgeapps/backbone/services/tenant/internal/events"
	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
	"github.com/forgeapps/backbone/services/tenant/internal/tenanttest"
)

type harness struct {
	env  *tenanttest.Env
	js   jetstream.JetStream
	done jetstream.MessagesContext
}

// start runs the outbox relay and the purge consumer against real Postgres and JetStream.
func start(t *testing.T) *harness {
	t.Helper()
	env := tenanttest.New(t, tenanttest.Options{})
	js := natstest.Start(t).JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, forgeevents.EnsureStreams(ctx, js, forgeevents.StreamsConfig{}))

	// The completions data-lifecycle would consume; created first, since the streams keep a
	// message only for consumers that exist when it is published.
	completions, err := js.OrderedConsumer(ctx, forgeevents.StreamLifecycle, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"lifecycle.purge.completed.tenant"},
	})
	require.NoError(t, err)
	it, err := completions.Messages()
	require.NoError(t, err)
	t.Cleanup(it.Stop)

	relay, err := forgeevents.NewRelay(forgeevents.RelayConfig{DB: env.PG.DB, ListenURL: env.PG.RuntimeURL, JS: js})
	require.NoError(t, err)
	cfg := tenantevents.NewPurgeConsumer(env.Store, 3, nil).Config()
	cfg.DeadLetter = func(ctx context.Context, dl forgeevents.DeadLetter) error {
		return forgeevents.RecordDeadLetter(ctx, env.PG.DB, dl)
	}
	cfg.MaxDeliver = 2
	cfg.BackOff = []time.Duration{200 * time.Millisecond}
	stopped := make(chan struct{}, 2)
	go func() { _ = relay.Run(ctx); stopped <- struct{}{} }()
	go func() { _ = forgeevents.Consume(ctx, js, cfg); stopped <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-stopped
		<-stopped
	})
	require.Eventually(t, func() bool {
		_, err := js.Consumer(ctx, forgeevents.StreamLifecycle, tenantevents.Durable)
		return err == nil
	}, 15*time.Second, 10*time.Millisecond, "the durable consumer exists before anything is published")
	return &harness{env: env, js: js, done: it}
}

func (h *harness) signUp(t *testing.T, subject string) owner.ID {
	t.Helper()
	res, err := h.env.Store.SignIn(context.Background(),
		tenant.Identity{Issuer: "https://idp.test", Subject: subject, Email: subject + "@example.com"}, tenant.SignUp{}, "ua")
	require.NoError(t, err)
	return res.Account.OwnerID
}

// requestPurge publishes lifecycle.purge.requested for id as data-lifecycle does: through an
// outbox, relayed to JetStream.
func (h *harness) requestPurge(t *testing.T, id owner.ID, deletionID string) {
	t.Helper()
	err := h.env.PG.DB.Tx(context.Background(), id, func(ctx context.Context, tx database.Tx) error {
		_, err := h.env.Outbox.Enqueue(ctx, tx, &eventsv1.PurgeRequested{
			Meta: &eventsv1.EventMeta{OwnerId: id.String()}, DeletionId: deletionID,
		})
		return err
	})
	require.NoError(t, err)
}

func (h *harness) nextCompletion(t *testing.T) *eventsv1.PurgeStoreCompleted {
	t.Helper()
	type result struct {
		msg jetstream.Msg
		err error
	}
	ch := make(chan result, 1)
	go func() {
		msg, err := h.done.Next()
		ch <- result{msg, err}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		var ev eventsv1.PurgeStoreCompleted
		require.NoError(t, proto.Unmarshal(r.msg.Data(), &ev))
		return &ev
	case <-time.After(30 * time.Second):
		t.Fatal("no PurgeStoreCompleted")
		return nil
	}
}

func (h *harness) rowsOf(t *testing.T, id owner.ID) int {
	t.Helper()
	n := 0
	for _, rows := range h.env.Snapshot(t, id) {
		n += len(rows)
	}
	return n
}

func TestPurgeRequestedPurgesInBatchesAndReports(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	gone := h.signUp(t, "gone")
	kept := h.signUp(t, "kept")
	for i := range 4 {
		_, err := h.env.Store.Grant(ctx, gone, tenant.GrantRequest(1, "r", uuid.NewString()))
		require.NoError(t, err, i)
	}
	_, err := h.env.Store.DisableTenant(ctx, gone)
	require.NoError(t, err)
	keptBefore := h.rowsOf(t, kept)

	deletionID := uuid.NewString()
	h.requestPurge(t, gone, deletionID)
	ev := h.nextCompletion(t)
	require.Equal(t, "tenant", ev.GetStore())
	require.Equal(t, deletionID, ev.GetDeletionId())
	require.Equal(t, gone.String(), ev.GetMeta().GetOwnerId())
	// 1 session + 4 entries + 1 identity + balance, account, directory.
	require.EqualValues(t, 1+4+1+3, ev.GetRowsDeleted())

	// Once the relay has published the last announcements, nothing of the tenant is left in
	// any table (no tombstone, no inbox record).
	require.Eventually(t, func() bool { return h.rowsOf(t, gone) == 0 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, keptBefore, h.rowsOf(t, kept))

	// A duplicated purge event changes nothing and reports completion again.
	h.requestPurge(t, gone, deletionID)
	again := h.nextCompletion(t)
	require.Equal(t, deletionID, again.GetDeletionId())
	require.Zero(t, again.GetRowsDeleted())
	require.Eventually(t, func() bool { return h.rowsOf(t, gone) == 0 }, 30*time.Second, 20*time.Millisecond)
}

// A purge request for an active tenant (its deletion was cancelled) never purges it: the
// event exhausts its deliveries and is kept as a dead letter under the tenant.
func TestPurgeOfActiveTenantIsRefusedAndKept(t *testing.T) {
	h := start(t)
	id := h.signUp(t, "active")
	deletionID := uuid.NewString()
	h.requestPurge(t, id, deletionID)

	require.Eventually(t, func() bool { return h.env.Count(t, "event_dead_letters", id) == 1 }, 30*time.Second, 20*time.Millisecond)
	var reason, eventType string
	require.NoError(t, h.env.PG.Migrator.QueryRow(context.Background(),
		`select reason, event_type from event_dead_letters where owner_id = $1`, id).Scan(&reason, &eventType))
	require.Equal(t, forgeevents.ReasonMaxDeliveries, reason)
	require.Equal(t, "forge.events.v1.PurgeRequested", eventType)
	acct, err := h.env.Store.GetAccount(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, tenant.StatusActive, acct.Status)
	require.Equal(t, 1, h.env.Count(t, "accounts", id))
}
