package events

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/database"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
)

func TestEnqueueRefusesInvalidEvents(t *testing.T) {
	env := newPG(t)
	o := newTestOutbox(t, nil)
	tenant := owner.New()
	tests := []struct {
		name    string
		ctx     context.Context
		ev      func() Event
		wantErr error
	}{
		{"no meta", context.Background(), func() Event {
			return &eventsv1.AppCreated{AppId: uuid.NewString()}
		}, ErrNoOwner},
		{"meta without owner_id", context.Background(), func() Event {
			return &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{}, AppId: uuid.NewString()}
		}, ErrNoOwner},
		{"malformed owner_id", context.Background(), func() Event {
			return &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{OwnerId: "tenant-a"}, AppId: uuid.NewString()}
		}, ErrNoOwner},
		{"another region", context.Background(), func() Event {
			return &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{OwnerId: tenant.String(), Region: "eu-west"}, AppId: uuid.NewString()}
		}, ErrInvalidEvent},
		{"owner homed elsewhere", owner.NewContext(context.Background(), owner.Owner{ID: tenant, HomeRegion: owner.EUWest}), func() Event {
			return &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{OwnerId: tenant.String()}, AppId: uuid.NewString()}
		}, ErrInvalidEvent},
		{"event about another tenant than the request's", owner.NewContext(context.Background(), owner.Owner{ID: owner.New(), HomeRegion: owner.USEast}), func() Event {
			return &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{OwnerId: tenant.String()}, AppId: uuid.NewString()}
		}, ErrInvalidEvent},
		{"malformed event_id", context.Background(), func() Event {
			return &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{OwnerId: tenant.String(), EventId: "1"}, AppId: uuid.NewString()}
		}, ErrInvalidEvent},
		{"protovalidate rule", context.Background(), func() Event {
			return &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{OwnerId: tenant.String()}, AppId: "not-a-uuid"}
		}, ErrInvalidEvent},
		{"purge store not a subject", context.Background(), func() Event {
			return &eventsv1.PurgeStoreCompleted{Meta: &eventsv1.EventMeta{OwnerId: tenant.String()},
				DeletionId: uuid.NewString(), Store: "apps.*"}
		}, ErrInvalidEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := env.DB.Tx(tc.ctx, tenant, func(ctx context.Context, tx database.Tx) error {
				_, err := o.Enqueue(ctx, tx, tc.ev())
				return err
			})
			require.ErrorIs(t, err, tc.wantErr)
			assert.Zero(t, count(t, env, `SELECT count(*) FROM outbox`))
		})
	}

	t.Run("event of another tenant than the transaction's is refused by RLS", func(t *testing.T) {
		err := env.DB.Tx(context.Background(), tenant, func(ctx context.Context, tx database.Tx) error {
			_, err := o.Enqueue(ctx, tx, &eventsv1.AppCreated{
				Meta: &eventsv1.EventMeta{OwnerId: owner.New().String()}, AppId: uuid.NewString()})
			return err
		})
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		assert.Equal(t, "42501", pgErr.Code, "row-level security violation expected: %v", err)
		assert.Zero(t, count(t, env, `SELECT count(*) FROM outbox`))
	})

	t.Run("a valid event gets its meta filled", func(t *testing.T) {
		at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
		o := newTestOutbox(t, func() time.Time { return at })
		ev := &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{OwnerId: tenant.String()}, AppId: uuid.NewString()}
		var id uuid.UUID
		require.NoError(t, env.DB.Tx(context.Background(), tenant, func(ctx context.Context, tx database.Tx) error {
			var err error
			id, err = o.Enqueue(ctx, tx, ev)
			return err
		}))
		assert.Equal(t, id.String(), ev.GetMeta().GetEventId())
		assert.Equal(t, "us-east", ev.GetMeta().GetRegion())
		assert.True(t, ev.GetMeta().GetOccurTime().AsTime().Equal(at))
		var subject, evType string
		require.NoError(t, env.Migrator.QueryRow(context.Background(),
			`SELECT subject, headers->>'Forge-Event-Type' FROM outbox WHERE owner_id = $1 AND id = $2`, tenant, id).
			Scan(&subject, &evType))
		assert.Equal(t, SubjectAppCreated, subject)
		assert.Equal(t, "forge.events.v1.AppCreated", evType)
	})

	t.Run("the runtime role sees only its owner's outbox rows", func(t *testing.T) {
		var n int
		require.NoError(t, env.DB.Tx(context.Background(), owner.New(), func(ctx context.Context, tx database.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
		}))
		assert.Zero(t, n)
		require.NoError(t, env.DB.SystemTx(context.Background(), func(ctx context.Context, tx database.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
		}))
		assert.Zero(t, n, "outside an owner transaction only outbox_claim reaches the rows")
	})
}

// A rolled-back transaction publishes nothing; the event committed after it, which the
// relay reaches only after the place the rolled-back one would have had, proves the relay
// has looked. Trace context and owner travel from the enqueuing request to the handler.
func TestOutboxPublishesCommittedEventsOnly(t *testing.T) {
	env := newPG(t)
	_, js := startJetStream(t)
	type seen struct {
		d     Delivery
		owner owner.Owner
		trace trace.TraceID
	}
	got := make(chan seen, 8)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"},
		Handler: func(ctx context.Context, d Delivery) error {
			o, _ := owner.FromContext(ctx)
			got <- seen{d: d, owner: o, trace: trace.SpanContextFromContext(ctx).TraceID()}
			return nil
		},
		DeadLetter: func(context.Context, DeadLetter) error { return nil },
	})
	runRelay(t, env, js, RelayConfig{})
	o := newTestOutbox(t, nil)
	tenant := owner.New()
	traceID := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled}))

	rolledBack, err := enqueueApp(ctx, env, o, tenant, true)
	require.ErrorIs(t, err, errRollback)
	committed, err := enqueueApp(ctx, env, o, tenant, false)
	require.NoError(t, err)

	select {
	case s := <-got:
		require.Equal(t, committed, s.d.EventID, "the rolled-back event was published")
		assert.Equal(t, owner.Owner{ID: tenant, HomeRegion: owner.USEast}, s.owner)
		assert.Equal(t, traceID, s.trace)
	case <-time.After(waitFor):
		t.Fatal("committed event not delivered")
	}
	require.Eventually(t, func() bool { return count(t, env, `SELECT count(*) FROM outbox`) == 0 }, waitFor, tick)
	assert.Zero(t, count(t, env, `SELECT count(*) FROM apps WHERE owner_id = $1`, tenant)-1, "one app: the committed one")
	select {
	case s := <-got:
		t.Fatalf("unexpected delivery %s (rolled back: %s)", s.d.EventID, rolledBack)
	default:
	}
}

// A relay whose delete fails after JetStream acknowledged the publish (here: the runtime role
// lost EXECUTE on outbox_delete) keeps republishing the row, dies, and a new relay finishes
// the job. JetStream drops every republish as a duplicate and the effect happens once.
func TestRelayKilledBetweenPublishAndDeleteHasOneEffect(t *testing.T) {
	env := newPG(t)
	_, js := startJetStream(t)
	h := newEffectHandler(env)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"}, Handler: h.handle,
		DeadLetter: func(context.Context, DeadLetter) error { return errors.New("unexpected dead letter") },
	})
	env.ExecAdmin(t, fmt.Sprintf(`REVOKE EXECUTE ON FUNCTION %s.outbox_delete(uuid[]) FROM %q`, env.Names.Schema, env.Names.RuntimeRole))

	tenant := owner.New()
	id, err := enqueueApp(context.Background(), env, newTestOutbox(t, nil), tenant, false)
	require.NoError(t, err)

	first := newMetrics()
	stopFirst := runRelay(t, env, js, RelayConfig{Meter: first.provider})
	require.Eventually(t, func() bool {
		return first.sum(t, "forge.events.relay.published", attribute.Bool("duplicate", true)) >= 2
	}, waitFor, tick, "the failing relay should publish, fail to delete, and republish")
	assert.Equal(t, int64(1), first.sum(t, "forge.events.relay.published", attribute.Bool("duplicate", false)))
	stopFirst() // the process dies with the row still in the outbox
	require.Equal(t, 1, count(t, env, `SELECT count(*) FROM outbox`))

	env.ExecAdmin(t, fmt.Sprintf(`GRANT EXECUTE ON FUNCTION %s.outbox_delete(uuid[]) TO %q`, env.Names.Schema, env.Names.RuntimeRole))
	second := newMetrics()
	runRelay(t, env, js, RelayConfig{Meter: second.provider})
	require.Eventually(t, func() bool { return count(t, env, `SELECT count(*) FROM outbox`) == 0 }, waitFor, tick)
	assert.Equal(t, int64(1), second.sum(t, "forge.events.relay.published", attribute.Bool("duplicate", true)))
	assert.Zero(t, second.sum(t, "forge.events.relay.published", attribute.Bool("duplicate", false)))

	require.Eventually(t, func() bool { return effectsOf(t, env, id) == 1 }, waitFor, tick)
	assert.Equal(t, 1, h.callsOf(id), "JetStream delivered a duplicate")
	assert.Equal(t, 1, count(t, env, `SELECT count(*) FROM inbox WHERE event_id = $1 AND consumer = 'svc'`, id))
}

// After JetStream's duplicate window, a republished event is stored and delivered again;
// the inbox still makes its effect happen once.
func TestInboxHoldsAfterTheDuplicateWindow(t *testing.T) {
	env := newPG(t)
	js := natstest.Start(t).JetStream(t)
	ctx := context.Background()
	require.NoError(t, EnsureStreams(ctx, js, StreamsConfig{Duplicates: 100 * time.Millisecond}))
	h := newEffectHandler(env)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"}, Handler: h.handle,
		DeadLetter: func(context.Context, DeadLetter) error { return errors.New("unexpected dead letter") },
	})

	tenant := owner.New()
	ev := appAccessChanged(tenant)
	ev.Meta.OccurTime = timestamppb.Now()
	row, err := newTestOutbox(t, nil).prepare(ctx, ev)
	require.NoError(t, err)
	pub := testPublisher(js)
	require.NoError(t, pub.publish(ctx, row))
	require.Eventually(t, func() bool { return effectsOf(t, env, row.id) == 1 }, waitFor, tick)

	// Republish until JetStream no longer calls it a duplicate: the window has passed.
	require.Eventually(t, func() bool {
		ack, err := js.PublishMsg(ctx, row.message(), jetstream.WithMsgID(row.id.String()))
		return err == nil && !ack.Duplicate
	}, waitFor, tick)
	require.Eventually(t, func() bool { return h.callsOf(row.id) == 2 }, waitFor, tick, "the second copy must be delivered")
	assert.Equal(t, 1, effectsOf(t, env, row.id), "the inbox must absorb the second delivery")
}

// NATS stops while events are enqueued and comes back: every event arrives, once, and the
// relay logs the outage once rather than once per retry.
func TestRelaySurvivesNATSRestart(t *testing.T) {
	env := newPG(t)
	srv, js := startJetStream(t)
	h := newEffectHandler(env)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"}, Handler: h.handle,
		DeadLetter: func(context.Context, DeadLetter) error { return errors.New("unexpected dead letter") },
	})
	logs := &logLines{tb: t}
	runRelay(t, env, js, RelayConfig{Logger: logs.logger()})
	o := newTestOutbox(t, nil)
	var ids []uuid.UUID
	enqueue := func(n int) {
		for range n {
			id, err := enqueueApp(context.Background(), env, o, owner.New(), false)
			require.NoError(t, err)
			ids = append(ids, id)
		}
	}
	enqueue(3)
	require.Eventually(t, func() bool { return count(t, env, `SELECT count(*) FROM outbox`) == 0 }, waitFor, tick)
	srv.Shutdown()
	enqueue(5)
	require.Eventually(t, func() bool {
		return logs.count("events: dependency unavailable, retrying", map[string]string{"what": "outbox relay"}) == 1
	}, waitFor, tick, "the relay must notice the outage")
	srv.Restart()
	enqueue(3)

	require.Eventually(t, func() bool { return count(t, env, `SELECT count(*) FROM outbox`) == 0 }, waitFor, tick)
	require.Eventually(t, func() bool { return count(t, env, `SELECT count(*) FROM effects`) == len(ids) }, waitFor, tick)
	for _, id := range ids {
		assert.Equal(t, 1, effectsOf(t, env, id), "event %s", id)
	}
	assert.Equal(t, 1, logs.count("events: dependency unavailable, retrying", map[string]string{"what": "outbox relay"}),
		"one outage, one warning")
	assert.GreaterOrEqual(t, logs.count("events: dependency recovered", map[string]string{"what": "outbox relay"}), 1)
}

// The relay's Postgres connections are killed (as a Postgres restart or failover does):
// it reconnects and goes on, its LISTEN included.
func TestRelaySurvivesPostgresConnectionLoss(t *testing.T) {
	env := newPG(t)
	_, js := startJetStream(t)
	h := newEffectHandler(env)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"}, Handler: h.handle,
		DeadLetter: func(context.Context, DeadLetter) error { return errors.New("unexpected dead letter") },
	})
	// Polling only once an hour: only a working LISTEN delivers promptly.
	runRelay(t, env, js, RelayConfig{PollInterval: time.Hour})
	o := newTestOutbox(t, nil)
	for round := range 3 {
		// Wait for the relay's LISTEN connection, then kill every runtime-role backend.
		require.Eventually(t, func() bool { return listening(t, env) == 1 }, waitFor, tick, "round %d: relay not listening", round)
		env.ExecAdmin(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, env.Names.RuntimeRole)

		var id uuid.UUID
		require.Eventually(t, func() bool {
			var err error
			id, err = enqueueApp(context.Background(), env, o, owner.New(), false)
			return err == nil // the pool may hand out a killed connection once
		}, waitFor, tick)
		require.Eventually(t, func() bool { return effectsOf(t, env, id) == 1 }, waitFor, tick, "round %d", round)
	}
}

// sandbox-origin must stop serving within a second of an unpublish: a committed event is
// published at once through LISTEN/NOTIFY, not at the next poll.
func TestRelayPublishesWithinASecondOfCommit(t *testing.T) {
	env := newPG(t)
	_, js := startJetStream(t)
	got := make(chan time.Time, 8)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "sandbox-origin", Subjects: []string{SubjectAppAccessChanged},
		Handler:    func(context.Context, Delivery) error { got <- time.Now(); return nil },
		DeadLetter: func(context.Context, DeadLetter) error { return nil },
	})
	runRelay(t, env, js, RelayConfig{PollInterval: time.Hour})
	require.Eventually(t, func() bool { return listening(t, env) == 1 }, waitFor, tick)
	o := newTestOutbox(t, nil)
	for i := range 5 {
		start := time.Now()
		_, err := enqueueApp(context.Background(), env, o, owner.New(), false)
		require.NoError(t, err)
		select {
		case at := <-got:
			lat := at.Sub(start) // from before the transaction began: an upper bound
			t.Logf("commit to handler: %s", lat)
			assert.Less(t, lat, time.Second, "event %d", i)
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not delivered without polling: LISTEN/NOTIFY is not working", i)
		}
	}
}

// Several relay replicas share one outbox: each row is claimed by one of them at a time, so
// no row is published twice.
func TestRelayReplicasNeverPublishARowTwice(t *testing.T) {
	env := newPG(t)
	_, js := startJetStream(t)
	h := newEffectHandler(env)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"}, Handler: h.handle,
		DeadLetter: func(context.Context, DeadLetter) error { return errors.New("unexpected dead letter") },
	})
	const events = 120
	o := newTestOutbox(t, nil)
	var ids []uuid.UUID
	for range events {
		id, err := enqueueApp(context.Background(), env, o, owner.New(), false)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	m := newMetrics()
	for range 3 {
		runRelay(t, env, js, RelayConfig{Meter: m.provider, Batch: 5, PollInterval: 5 * time.Millisecond})
	}
	require.Eventually(t, func() bool { return count(t, env, `SELECT count(*) FROM outbox`) == 0 }, waitFor, tick)
	require.Eventually(t, func() bool { return count(t, env, `SELECT count(*) FROM effects`) == events }, waitFor, tick)
	assert.Equal(t, int64(events), m.sum(t, "forge.events.relay.published", attribute.Bool("duplicate", false)))
	assert.Zero(t, m.sum(t, "forge.events.relay.published", attribute.Bool("duplicate", true)),
		"a row was published by two replicas")
	for _, id := range ids {
		assert.Equal(t, 1, h.callsOf(id))
	}
}

// A row no stream stores (the catalog lost its subject) stays in the outbox, visible, and
// does not hold up the rows behind it.
func TestRelaySkipsUnpublishableRowsWithoutLosingThem(t *testing.T) {
	env := newPG(t)
	_, js := startJetStream(t)
	h := newEffectHandler(env)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"}, Handler: h.handle,
		DeadLetter: func(context.Context, DeadLetter) error { return errors.New("unexpected dead letter") },
	})
	stray := uuid.New()
	_, err := env.Migrator.Exec(context.Background(),
		`INSERT INTO outbox (owner_id, id, subject, payload, created_at) VALUES ($1, $2, 'nowhere.at.all', '', now() - interval '1 hour')`,
		owner.New(), stray)
	require.NoError(t, err)
	logs := &logLines{tb: t}
	runRelay(t, env, js, RelayConfig{Logger: logs.logger(), Batch: 1})

	id, err := enqueueApp(context.Background(), env, newTestOutbox(t, nil), owner.New(), false)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return effectsOf(t, env, id) == 1 }, waitFor, tick)
	assert.Equal(t, 1, count(t, env, `SELECT count(*) FROM outbox WHERE id = $1`, stray))
	assert.Equal(t, 1, logs.count("events: outbox row cannot be published", map[string]string{"event_id": stray.String()}),
		"reported once, not at every poll")
}
