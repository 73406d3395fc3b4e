package events

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
)

// effectsMigration is the test service's own schema: apps (the state an event announces) and
// effects (what a consumer does once per event, counted by the tests).
const effectsMigration = `-- +goose Up
CREATE TABLE apps (
    owner_id uuid NOT NULL,
    id uuid NOT NULL,
    PRIMARY KEY (owner_id, id)
);
CALL forge_tenant_table('apps');
CREATE TABLE effects (
    owner_id uuid NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    event_id uuid NOT NULL,
    PRIMARY KEY (owner_id, id)
);
CALL forge_tenant_table('effects');

-- +goose Down
DROP TABLE effects;
DROP TABLE apps;
`

// newPG makes a service database with the events source applied between the platform's and
// the service's own, as services will.
func newPG(tb testing.TB) *pgtest.Env {
	tb.Helper()
	svc := database.Source{Name: "svc", FS: fstest.MapFS{"00001_effects.sql": {Data: []byte(effectsMigration)}}}
	return pgtest.New(tb, pgtest.Spec{
		Schema:  "svc",
		Sources: []database.Source{{Name: MigrationSourceName, FS: Migrations()}, svc},
	})
}

// enqueueApp creates an app and announces it, in one owner transaction; fail makes the
// transaction roll back after the Enqueue.
func enqueueApp(ctx context.Context, env *pgtest.Env, o *Outbox, ownerID owner.ID, fail bool) (uuid.UUID, error) {
	appID := uuid.New()
	var eventID uuid.UUID
	err := env.DB.Tx(ctx, ownerID, func(ctx context.Context, tx database.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO apps (owner_id, id) VALUES ($1, $2)`, ownerID, appID); err != nil {
			return err
		}
		ev := appAccessChanged(ownerID)
		ev.AppId = appID.String()
		id, err := o.Enqueue(ctx, tx, ev)
		if err != nil {
			return err
		}
		eventID = id
		if fail {
			return errRollback
		}
		return nil
	})
	return eventID, err
}

var errRollback = errorString("the request failed after the enqueue")

type errorString string

func (e errorString) Error() string { return string(e) }

// effectHandler is an idempotent handler as services write them: inbox first, then the
// effect, in the event owner's transaction. It counts its finished calls.
type effectHandler struct {
	env   *pgtest.Env
	mu    sync.Mutex
	calls map[uuid.UUID]int
}

func newEffectHandler(env *pgtest.Env) *effectHandler {
	return &effectHandler{env: env, calls: map[uuid.UUID]int{}}
}

func (h *effectHandler) handle(ctx context.Context, d Delivery) error {
	// Counted once the call is over, so a test that saw the count sees its transaction's end.
	defer func() {
		h.mu.Lock()
		h.calls[d.EventID]++
		h.mu.Unlock()
	}()
	return h.env.DB.Tx(ctx, d.Owner.ID, func(ctx context.Context, tx database.Tx) error {
		first, err := MarkProcessed(ctx, tx, d)
		if err != nil || !first {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO effects (owner_id, event_id) VALUES ($1, $2)`, d.Owner.ID, d.EventID)
		return err
	})
}

func (h *effectHandler) callsOf(id uuid.UUID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

// count runs a counting query as the migration role (BYPASSRLS: every tenant's rows).
func count(tb testing.TB, env *pgtest.Env, sql string, args ...any) int {
	tb.Helper()
	var n int
	require.NoError(tb, env.Migrator.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// adminCount runs a counting query as the administrator (pg_stat_activity shows other
// roles' queries only to a superuser).
func adminCount(tb testing.TB, env *pgtest.Env, sql string, args ...any) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, err := pgx.Connect(ctx, env.AdminURL)
	require.NoError(tb, err)
	defer func() { _ = conn.Close(ctx) }()
	var n int
	require.NoError(tb, conn.QueryRow(ctx, sql, args...).Scan(&n))
	return n
}

// listening counts the runtime role's connections waiting in LISTEN.
func listening(tb testing.TB, env *pgtest.Env) int {
	tb.Helper()
	return adminCount(tb, env, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE 'LISTEN%'`,
		env.Names.RuntimeRole)
}

// effectsOf counts the effects applied for one event.
func effectsOf(tb testing.TB, env *pgtest.Env, id uuid.UUID) int {
	tb.Helper()
	return count(tb, env, `SELECT count(*) FROM effects WHERE event_id = $1`, id)
}

// runRelay starts a relay and returns a stop function that waits for Run to return (it is
// also called at cleanup).
func runRelay(t *testing.T, env *pgtest.Env, js jetstream.JetStream, cfg RelayConfig) (stop func()) {
	t.Helper()
	cfg.DB, cfg.JS = env.DB, js
	if cfg.ListenURL == "" {
		cfg.ListenURL = env.RuntimeURL
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 500 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	r, err := NewRelay(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(waitFor):
				t.Error("relay did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// logLines captures JSON log records, and copies them into the test log.
type logLines struct {
	tb  testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tb.Log(strings.TrimSpace(string(p)))
	return l.buf.Write(p)
}

func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// count counts records with the message msg whose attributes include every pair of attrs.
func (l *logLines) count(msg string, attrs map[string]string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			match = match && rec[k] == v
		}
		if match {
			n++
		}
	}
	return n
}
