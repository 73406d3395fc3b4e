// Package tenanttest builds the tenant service the way production runs it, for the tests of
// its packages: a fresh PostgreSQL database migrated with the service's sources (pkg/testkit
// /pgtest), the Store over the runtime role's pool, and a gRPC server with the real mTLS
// interceptor chain and the service's workload table (pkg/testkit/grpctest). Its clock is
// injected so tests can expire sessions without sleeping, and Snapshot reads rows as the
// migration role (the table owner, outside RLS) to prove what a request did not change.
//
// Only tests import it.
package tenanttest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/tenant/internal/grpcapi"
	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
)

// Clock is a settable clock for the Store.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Options tunes an Env.
type Options struct {
	// Region is the instance's region (us-east when empty).
	Region owner.Region
	// MaxConns caps the runtime pool (0: pgxpool's default).
	MaxConns int32
	// SessionTTL is the session lifetime (1 hour when 0).
	SessionTTL time.Duration
	// DB reuses another Env's database instead of making one (two regions' instances over one
	// database, for the directory tests).
	DB *pgtest.Env
}

// Env is one test's tenant service.
type Env struct {
	PG     *pgtest.Env
	Store  *postgres.Store
	Outbox *events.Outbox
	Clock  *Clock
	Region owner.Region
	TTL    time.Duration
}

// New makes a fresh database and a Store over it.
func New(tb testing.TB, opts Options) *Env {
	tb.Helper()
	if opts.Region == "" {
		opts.Region = owner.DefaultRegion
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = time.Hour
	}
	pg := opts.DB
	if pg == nil {
		pg = pgtest.New(tb, pgtest.Spec{
			Schema:  postgres.Schema,
			Sources: postgres.Sources(),
			Options: database.Options{MaxConns: opts.MaxConns},
		})
	}
	outbox, err := events.NewOutbox(events.OutboxConfig{Region: opts.Region})
	require.NoError(tb, err)
	// Start the clock in the past, so that real time (the database's now()) never runs
	// behind it when a test moves it forward.
	clock := &Clock{now: time.Now().UTC().Add(-time.Minute)}
	store, err := postgres.NewStore(pg.DB, outbox, postgres.Options{Region: opts.Region, SessionTTL: opts.SessionTTL, Now: clock.Now})
	require.NoError(tb, err)
	return &Env{PG: pg, Store: store, Outbox: outbox, Clock: clock, Region: opts.Region, TTL: opts.SessionTTL}
}

// Server is the Env served over mTLS gRPC with the real interceptor chain.
type Server struct {
	*Env
	PKI  *grpctest.PKI
	Addr string
	// Conns are client connections by workload name, dialled on first use.
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	tb    testing.TB
}

// Serve starts the gRPC server over e.
func (e *Env) Serve(tb testing.TB) *Server {
	tb.Helper()
	pki := grpctest.NewPKI(tb)
	addr := pki.Start(tb, grpctest.Server{
		Name:     workload.Tenant,
		Table:    grpcapi.Table(),
		Region:   e.Region,
		Register: grpcapi.New(e.Store).Register,
	})
	return &Server{Env: e, PKI: pki, Addr: addr, conns: map[string]*grpc.ClientConn{}, tb: tb}
}

// Conn returns a connection to the server as workload name.
func (s *Server) Conn(name string) *grpc.ClientConn {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if cc, ok := s.conns[name]; ok {
		return cc
	}
	cc := s.PKI.Dial(s.tb, s.Addr, name, workload.Tenant)
	s.conns[name] = cc
	return cc
}

// AsOwner returns ctx acting for id in the Env's region with the given session (what the
// edge asserts after Authenticate); sessionID may be empty.
func (e *Env) AsOwner(ctx context.Context, id owner.ID, sessionID string) context.Context {
	ctx = owner.NewContext(ctx, owner.Owner{ID: id, HomeRegion: e.Region})
	if sessionID != "" {
		ctx = owner.WithSessionID(ctx, sessionID)
	}
	return ctx
}

// Snapshot returns every row of every table of the schema, as the migration role sees them
// (outside RLS), as sorted JSON texts by table. With only set, rows of other owners are left
// out. The outbox is included: an event is a write too.
func (e *Env) Snapshot(tb testing.TB, only ...owner.ID) map[string][]string {
	tb.Helper()
	ctx := context.Background()
	rows, err := e.PG.Migrator.Query(ctx, `select c.relname::text from pg_class c
		join pg_namespace n on n.oid = c.relnamespace
		where n.nspname = $1 and c.relkind in ('r', 'p') order by 1`, postgres.Schema)
	require.NoError(tb, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(tb, err)
	out := map[string][]string{}
	for _, t := range tables {
		q := fmt.Sprintf(`select to_jsonb(t)::text from %s t`, pgx.Identifier{t}.Sanitize())
		args := []any{}
		if len(only) > 0 {
			ids := make([]string, 0, len(only))
			for _, id := range only {
				ids = append(ids, id.String())
			}
			q += ` where t.owner_id = any($1::uuid[])`
			args = append(args, ids)
		}
		rows, err := e.PG.Migrator.Query(ctx, q, args...)
		require.NoError(tb, err, t)
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(tb, err, t)
		sort.Strings(texts)
		out[t] = texts
	}
	return out
}

// Count returns how many rows of the owner a table holds (as the migration role).
func (e *Env) Count(tb testing.TB, table string, id owner.ID) int {
	tb.Helper()
	var n int
	err := e.PG.Migrator.QueryRow(context.Background(),
		fmt.Sprintf(`select count(*) from %s where owner_id = $1`, pgx.Identifier{table}.Sanitize()), id).Scan(&n)
	require.NoError(tb, err)
	return n
}

// OutboxSubjects lists the subjects of the owner's pending outbox rows, oldest first.
func (e *Env) OutboxSubjects(tb testing.TB, id owner.ID) []string {
	tb.Helper()
	rows, err := e.PG.Migrator.Query(context.Background(),
		`select subject from outbox where owner_id = $1 order by created_at, id`, id)
	require.NoError(tb, err)
	subjects, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(tb, err)
	return subjects
}
