package database

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tunes the runtime pool.
type Options struct {
	// Schema, when set, is the connections' search_path (a startup parameter, fixed for the
	// connection's life, like the migrations'), so service SQL names tables unqualified.
	Schema string
	// MaxConns caps the pool (0: pgxpool's default, the larger of 4 and the CPU count).
	MaxConns int32
	// MaxTxAttempts bounds how many times Tx runs fn when PostgreSQL reports a serialization
	// failure or a deadlock (0: 4; 1: no retry).
	MaxTxAttempts int
}

const (
	defaultMaxTxAttempts = 4
	// cleanupTimeout bounds a ROLLBACK or a close sent after the request's context ended.
	cleanupTimeout = 5 * time.Second
	// ownerSetting is the transaction-local setting every owner policy reads.
	ownerSetting = "app.owner_id"
)

// DB is the runtime role's connection pool. Its only ways in are the owner transaction
// (Tx, TxWith), the one-statement owner read (QueryRow) and the ownerless system transaction
// (SystemTx): there is no way to run a statement without first setting the owner, or "no
// owner", for that transaction.
type DB struct {
	pool        *pgxpool.Pool
	maxAttempts int
}

// ErrOwnerLeaked reports that app.owner_id was found set outside the transaction that owns it:
// something set it for the session. The connection is closed, never reused. It always
// describes a defect (the repository forbids session-level settings), never a request.
var ErrOwnerLeaked = errors.New("database: app.owner_id set for the session; connection discarded")

// Open connects the runtime pool and pings it. runtimeURL must not set app.owner_id (for
// example through options=-c app.owner_id=...): the owner is set per transaction only.
func Open(ctx context.Context, runtimeURL string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(runtimeURL)
	if err != nil {
		return nil, fmt.Errorf("database: open: parse URL: %w", err)
	}
	for k, v := range cfg.ConnConfig.RuntimeParams {
		if k == ownerSetting || strings.Contains(v, ownerSetting) {
			return nil, fmt.Errorf("database: open: the URL sets %s for the session; it is set per transaction only", ownerSetting)
		}
	}
	if opts.Schema != "" {
		if err := validSchema(opts.Schema); err != nil {
			return nil, err
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
		if cfg.MinConns > cfg.MaxConns {
			cfg.MinConns = cfg.MaxConns
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: open: ping: %w", err)
	}
	db := &DB{pool: pool, maxAttempts: opts.MaxTxAttempts}
	if db.maxAttempts <= 0 {
		db.maxAttempts = defaultMaxTxAttempts
	}
	return db, nil
}

// Close closes every connection of the pool.
func (db *DB) Close() { db.pool.Close() }

// preludeSQL sets the owner for the current transaction and returns what app.owner_id held
// before. The subquery (kept apart by OFFSET 0) is evaluated before set_config runs, and
// before any statement of ours the value must be NULL (never set on this connection) or ”
// (a transaction-local value that ended): anything else was set for the session.
const preludeSQL = `select s.prev, set_config('app.owner_id', $1, true)` +
	` from (select current_setting('app.owner_id', true) as prev offset 0) as s`

// readPreludeSQL is preludeSQL for the one-statement read path, which also makes its implicit
// transaction read-only: that path is for reads, and a write slipped into it fails.
const readPreludeSQL = `select s.prev, set_config('app.owner_id', $1, true), set_config('transaction_read_only', 'on', true)` +
	` from (select current_setting('app.owner_id', true) as prev offset 0) as s`

// afterCommitSQL reads app.owner_id once the transaction is over.
const afterCommitSQL = `select current_setting('app.owner_id', true)`

// readPrelude reads a prelude's result (prev and `ignored` more columns) from a batch.
func readPrelude(br pgx.BatchResults, ignored int) (leaked bool, err error) {
	var prev pgtype.Text
	dest := make([]any, 1+ignored)
	dest[0] = &prev
	if err := br.QueryRow().Scan(dest...); err != nil {
		return false, fmt.Errorf("database: set owner: %w", err)
	}
	if prev.String != "" {
		return true, ErrOwnerLeaked
	}
	return false, nil
}

// release gives a connection back to the pool only when nothing of the request is left on it:
// no open or failed transaction, no unread result, no leaked owner. Otherwise it is closed.
func release(ctx context.Context, c *pgxpool.Conn, leaked bool) {
	pc := c.Conn().PgConn()
	if !leaked && !pc.IsClosed() && !pc.IsBusy() && pc.TxStatus() == 'I' {
		c.Release()
		return
	}
	conn := c.Hijack()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = conn.Close(cctx) // the connection is being thrown away; a failed goodbye changes nothing
}
