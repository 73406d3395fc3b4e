package events

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob/fileblob"
	"google.golang.org/protobuf/proto"

	"github.com/forgeapps/backbone/pkg/database"
	forgeevents "github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/kek"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/keybackup"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/postgres"
	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

type fixture struct {
	pg     *pgtest.Env
	vault  *vault.Vault
	backup *keybackup.Bucket
	outbox *forgeevents.Outbox
	c      *Consumers
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	pg := pgtest.New(tb, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	keyPath := filepath.Join(tb.TempDir(), "kek")
	require.NoError(tb, kek.NewKeyFile(keyPath))
	provider, err := kek.OpenFile(keyPath)
	require.NoError(tb, err)
	bucket, err := fileblob.OpenBucket(tb.TempDir(), nil)
	require.NoError(tb, err)
	backup := keybackup.New(bucket)
	tb.Cleanup(func() { _ = backup.Close() })
	v, err := vault.New(vault.Config{Store: postgres.NewStore(pg.DB), KEK: provider, Backup: backup})
	require.NoError(tb, err)
	outbox, err := forgeevents.NewOutbox(forgeevents.OutboxConfig{Region: owner.DefaultRegion})
	require.NoError(tb, err)
	return &fixture{pg: pg, vault: v, backup: backup, outbox: outbox,
		c: &Consumers{DB: pg.DB, Outbox: outbox, Vault: v, BackOff: []time.Duration{50 * time.Millisecond}}}
}

// seed gives o an app with a secret and returns the app ID.
func (f *fixture) seed(tb testing.TB, o owner.ID) uuid.UUID {
	tb.Helper()
	ctx := context.Background()
	app := uuid.New()
	require.NoError(tb, f.vault.RegisterApp(ctx, o, app))
	_, err := f.vault.PutSecret(ctx, o, vault.Actor{Workload: "test", Purpose: vault.PurposeSecretManagement}, vault.NewSecret{
		AppID: app, Name: "KEY", Value: secret.New("value"), UpstreamHost: "api.example.com",
		Injection: vault.Injection{Kind: vault.InjectHeader, HeaderName: "Authorization"},
	})
	require.NoError(tb, err)
	return app
}

func (f *fixture) count(tb testing.TB, table string, o owner.ID) int {
	tb.Helper()
	var n int
	require.NoError(tb, f.pg.Migrator.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE owner_id = $1`, o).Scan(&n))
	return n
}

func delivery(o owner.ID, ev forgeevents.Event) forgeevents.Delivery {
	t, _ := forgeevents.LookupType(ev.ProtoReflect().Descriptor().FullName())
	return forgeevents.Delivery{Event: ev, Type: t, EventID: uuid.New(), Owner: owner.Owner{ID: o, HomeRegion: owner.DefaultRegion},
		Consumer: Durable}
}

func ownerCtx(o owner.ID) context.Context {
	return owner.NewContext(context.Background(), owner.Owner{ID: o, HomeRegion: owner.DefaultRegion})
}

// TestPurgeHandlerIsIdempotent: the purge leaves no row of the tenant but the keyring
// tombstone (no inbox record, not even of the purge event), and a redelivery announces
// completion again with the same totals (data-lifecycle keeps the first report).
func TestPurgeHandlerIsIdempotent(t *testing.T) {
	f := newFixture(t)
	alice, bob := owner.New(), owner.New()
	f.seed(t, alice)
	f.seed(t, bob)
	d := delivery(alice, &eventsv1.PurgeRequested{Meta: &eventsv1.EventMeta{OwnerId: alice.String()}, DeletionId: uuid.NewString()})

	// Earlier events of both owners left inbox records.
	for _, o := range []owner.ID{alice, bob} {
		_, err := f.pg.Migrator.Exec(context.Background(), `INSERT INTO inbox (owner_id, consumer, event_id) VALUES ($1, $2, $3)`,
			o, Durable, uuid.New())
		require.NoError(t, err)
	}
	require.NoError(t, f.c.handlePurge(ownerCtx(alice), d))
	require.NoError(t, f.c.handlePurge(ownerCtx(alice), d), "a redelivery")

	// Every table of the schema, from the catalog: only the tombstone is left (and the two
	// reports, which the relay deletes once published).
	left := map[string]int{}
	rows, err := f.pg.Migrator.Query(context.Background(), `SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'owner_id' AND NOT a.attisdropped
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`, postgres.Schema)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "inbox")
	for _, tbl := range tables {
		if n := f.count(t, tbl, alice); n > 0 {
			left[tbl] = n
		}
	}
	require.Equal(t, map[string]int{postgres.KeyringTable: 1, "outbox": 2}, left,
		"the keyring tombstone is the one row of the purged tenant (outbox: the reports, until relayed)")
	require.Equal(t, 1, f.count(t, "inbox", bob), "another owner's inbox is untouched")

	rows, err = f.pg.Migrator.Query(context.Background(), `SELECT payload FROM outbox WHERE owner_id = $1 ORDER BY id`, alice)
	require.NoError(t, err)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	require.Len(t, payloads, 2, "each delivery reports completion")
	var first *eventsv1.PurgeStoreCompleted
	for i, payload := range payloads {
		done := &eventsv1.PurgeStoreCompleted{}
		require.NoError(t, proto.Unmarshal(payload, done))
		require.Equal(t, Store, done.GetStore())
		require.Equal(t, []uint32{1}, done.GetKeyVersionsDestroyed())
		require.Positive(t, done.GetRowsDeleted())
		if i == 0 {
			first = done
			continue
		}
		require.Equal(t, first.GetKeyVersionsDestroyed(), done.GetKeyVersionsDestroyed(), "the tombstone's totals again")
	}

	// The tombstone still does its job: a later first use creates no fresh key.
	_, _, err = f.vault.Encrypt(ownerCtx(alice), alice, vault.Actor{Workload: "test", Purpose: vault.PurposeExport},
		[]vault.Item{{Binding: vault.Binding{Object: "probe/1", Field: "f"}, Data: []byte("x")}})
	require.ErrorIs(t, err, vault.ErrShredded)
	require.Zero(t, f.count(t, "tenant_keys", alice))
}

func TestAppDeletedHandler(t *testing.T) {
	f := newFixture(t)
	alice := owner.New()
	app := f.seed(t, alice)
	other := f.seed(t, alice)
	d := delivery(alice, &eventsv1.AppDeleted{Meta: &eventsv1.EventMeta{OwnerId: alice.String()}, AppId: app.String()})
	require.NoError(t, f.c.handleAppDeleted(ownerCtx(alice), d))
	require.NoError(t, f.c.handleAppDeleted(ownerCtx(alice), d), "a redelivery")
	list, err := f.vault.ListSecrets(context.Background(), alice, other)
	require.NoError(t, err)
	require.Len(t, list, 1, "only the deleted app's secrets go")
	_, err = f.vault.ListSecrets(context.Background(), alice, app)
	require.Error(t, err)
}

// TestPurgeThroughJetStream runs the real path: the purge request travels through the outbox,
// the relay and JetStream to the vault's durable consumer, which shreds the tenant and
// announces completion the same way back.
func TestPurgeThroughJetStream(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := natstest.Start(t)
	js := ns.JetStream(t)
	require.NoError(t, forgeevents.EnsureStreams(ctx, js, forgeevents.StreamsConfig{}))
	relay, err := forgeevents.NewRelay(forgeevents.RelayConfig{DB: f.pg.DB, JS: js, ListenURL: f.pg.RuntimeURL, PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	done := make(chan error, 2)
	go func() { done <- relay.Run(ctx) }()
	go func() { done <- f.c.Run(ctx, js) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("worker: %v", err)
			}
		}
	})

	alice, bob := owner.New(), owner.New()
	f.seed(t, alice)
	bobApp := f.seed(t, bob)
	deletionID := uuid.NewString()
	publish := func(o owner.ID, ev forgeevents.Event) {
		require.NoError(t, f.pg.DB.Tx(ownerCtx(o), o, func(ctx context.Context, tx database.Tx) error {
			_, err := f.outbox.Enqueue(ctx, tx, ev)
			return err
		}))
	}
	publish(alice, &eventsv1.PurgeRequested{Meta: &eventsv1.EventMeta{OwnerId: alice.String()}, DeletionId: deletionID})
	publish(bob, &eventsv1.AppDeleted{Meta: &eventsv1.EventMeta{OwnerId: bob.String()}, AppId: bobApp.String()})

	cons, err := js.Consumer(ctx, forgeevents.StreamLifecycle, "data-lifecycle-purge-completed")
	require.NoError(t, err)
	var completed *eventsv1.PurgeStoreCompleted
	deadline := time.Now().Add(30 * time.Second)
	for completed == nil && time.Now().Before(deadline) {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		for msg := range batch.Messages() {
			var ev eventsv1.PurgeStoreCompleted
			require.NoError(t, proto.Unmarshal(msg.Data(), &ev))
			require.NoError(t, msg.Ack())
			if ev.GetDeletionId() == deletionID {
				completed = &ev
				require.Equal(t, "lifecycle.purge.completed.secrets-vault", msg.Subject())
			}
		}
	}
	require.NotNil(t, completed, "PurgeStoreCompleted arrived")
	require.Equal(t, Store, completed.GetStore())
	require.Equal(t, alice.String(), completed.GetMeta().GetOwnerId())
	require.Equal(t, []uint32{1}, completed.GetKeyVersionsDestroyed())
	require.Zero(t, f.count(t, "tenant_keys", alice))
	versions, err := f.backup.Versions(ctx, alice)
	require.NoError(t, err)
	require.Empty(t, versions)

	require.Eventually(t, func() bool { return f.count(t, "secrets", bob) == 0 }, 30*time.Second, 20*time.Millisecond,
		"the app-deleted event removed bob's app secrets")
	require.Equal(t, 1, f.count(t, "tenant_keys", bob), "bob keeps his key")
}
