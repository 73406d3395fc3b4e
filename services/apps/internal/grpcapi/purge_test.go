package grpcapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	appsevents "github.com/forgeapps/backbone/services/apps/internal/events"
)

// testPurgeEvent runs the real relay and the purge consumer on the stack's JetStream: a
// lifecycle.purge.requested event empties the owner's rows and objects, leaves the others',
// and PurgeStoreCompleted{store: "apps"} is published. It runs last: its relay empties the
// outbox the other scenarios read.
func testPurgeEvent(t *testing.T, e *env) {
	alice := e.signUp("alice", tenantv1.Plan_PLAN_STUDIO)
	victor := e.signUp("victor", tenantv1.Plan_PLAN_FREE)
	bob := e.signUp("bob", tenantv1.Plan_PLAN_FREE)
	f := e.makeApp(alice, "Doomed")
	e.share(alice, &f, victor, victor2(e))
	e.makeApp(bob, "Survivor")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js := e.st.NATS.JetStream(t)
	relay, err := events.NewRelay(events.RelayConfig{DB: e.pg.DB, JS: js, ListenURL: e.pg.RuntimeURL, PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	consumer := appsevents.NewPurgeConsumer(e.svc, nil)
	cfg := consumer.Config()
	cfg.DeadLetter = func(ctx context.Context, dl events.DeadLetter) error {
		return events.RecordDeadLetter(ctx, e.pg.DB, dl)
	}
	require.True(t, events.IsListed(cfg), "the durable consumer is on the suite's list")
	done := make(chan error, 2)
	go func() { done <- relay.Run(ctx) }()
	go func() { done <- events.Consume(ctx, js, cfg) }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})

	deletionID := uuid.New()
	outbox, err := events.NewOutbox(events.OutboxConfig{Region: owner.USEast})
	require.NoError(t, err)
	require.NoError(t, e.pg.DB.Tx(ctx, alice.id, func(ctx context.Context, tx database.Tx) error {
		_, err := outbox.Enqueue(ctx, tx, &eventsv1.PurgeRequested{Meta: &eventsv1.EventMeta{OwnerId: alice.id.String()},
			DeletionId: deletionID.String()})
		return err
	}))

	completed, err := js.OrderedConsumer(ctx, events.StreamLifecycle, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"lifecycle.purge.completed.apps"}, DeliverPolicy: jetstream.DeliverAllPolicy})
	require.NoError(t, err)
	var report eventsv1.PurgeStoreCompleted
	deadline := time.Now().Add(time.Minute)
	for report.GetDeletionId() != deletionID.String() {
		require.True(t, time.Now().Before(deadline), "no PurgeStoreCompleted within a minute")
		msg, err := completed.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		require.NoError(t, proto.Unmarshal(msg.Data(), &report))
	}
	require.Equal(t, "apps", report.GetStore())
	require.Equal(t, alice.id.String(), report.GetMeta().GetOwnerId())
	require.Positive(t, report.GetRowsDeleted())
	require.Positive(t, report.GetObjectsDeleted())

	require.Empty(t, e.ownerRows(alice.id), "nothing of the owner is left")
	for _, obj := range e.objects() {
		require.False(t, strings.HasPrefix(obj, alice.id.String()), obj)
	}
	require.NotEmpty(t, e.ownerRows(bob.id), "another owner's rows stay")
}
