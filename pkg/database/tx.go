package database

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/forgeapps/backbone/pkg/owner"
)

// Tx is the handle fn receives inside an owner transaction. Its statement methods have pgx's
// signatures and semantics. It belongs to one goroutine and dies when fn returns. Note that
// PostgreSQL refuses COPY FROM into a table with row-level security (SQLSTATE 0A000), so
// CopyFrom cannot load a tenant table.
type Tx interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
	// Owner is the tenant the transaction acts for (zero in a SystemTx).
	Owner() owner.ID
}

// TxOptions chooses the isolation level and access mode of a transaction.
type TxOptions struct {
	// IsoLevel is one of pgx's levels; "" is the server's default (read committed).
	IsoLevel pgx.TxIsoLevel
	// ReadOnly makes the transaction refuse writes.
	ReadOnly bool
}

func (o TxOptions) beginSQL() (string, error) {
	s := "begin"
	switch o.IsoLevel {
	case "":
	case pgx.Serializable, pgx.RepeatableRead, pgx.ReadCommitted, pgx.ReadUncommitted:
		s += " isolation level " + string(o.IsoLevel)
	default:
		return "", fmt.Errorf("database: unknown isolation level %q", o.IsoLevel)
	}
	if o.ReadOnly {
		s += " read only"
	}
	return s, nil
}

// ErrNoOwner is returned when a tenant path is given the zero owner. "No owner" is never a
// way to reach tenant rows: system code states it by calling SystemTx.
var ErrNoOwner = errors.New("database: no owner given")

// Tx runs fn in a transaction acting for owner o: app.owner_id is set to o with
// set_config('app.owner_id', $1, true), in the same round trip as BEGIN and fn's first
// statement. It commits when fn returns nil and rolls back when fn returns an error or panics
// (the panic goes on). On a serialization failure or a deadlock (SQLSTATE 40001, 40P01) it
// runs fn again from the start, up to Options.MaxTxAttempts times in all, so fn must have no
// effect outside the transaction. The zero owner is refused with ErrNoOwner.
func (db *DB) Tx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx Tx) error) error {
	return db.TxWith(ctx, o, TxOptions{}, fn)
}

// TxWith is Tx with an isolation level or access mode.
func (db *DB) TxWith(ctx context.Context, o owner.ID, opts TxOptions, fn func(ctx context.Context, tx Tx) error) error {
	if o.IsZero() {
		return ErrNoOwner
	}
	return db.run(ctx, o, opts, fn)
}

// SystemTx runs fn in a transaction with no owner: app.owner_id is set to ” for it, so every
// tenant table shows no rows and accepts no writes. It is for system code that goes through
// the reviewed SECURITY DEFINER functions of the schema (an outbox relay, a purge), which are
// the only cross-tenant paths. Retries and rollback are as for Tx.
func (db *DB) SystemTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	return db.run(ctx, owner.ID{}, TxOptions{}, fn)
}

func (db *DB) run(ctx context.Context, o owner.ID, opts TxOptions, fn func(context.Context, Tx) error) error {
	begin, err := opts.beginSQL()
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := db.attempt(ctx, o, begin, fn)
		if err == nil || attempt >= db.maxAttempts || !retryable(err) {
			return err
		}
		if werr := backoff(ctx, attempt); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

// retryable reports a failure that running the whole transaction again can cure.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// backoff waits a jittered, growing delay before the next attempt (at most ~160ms), so that
// transactions which just collided do not collide again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	ceiling := 5 * time.Millisecond << min(attempt, 5)
	t := time.NewTimer(ceiling/2 + rand.N(ceiling/2))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (db *DB) attempt(ctx context.Context, o owner.ID, begin string, fn func(context.Context, Tx) error) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("database: acquire: %w", err)
	}
	t := &ownerTx{conn: c.Conn(), owner: o, setting: o.String(), begin: begin}
	committed := false
	// Deferred so that it also runs while a panic unwinds.
	defer func() {
		t.done = true
		if !committed {
			t.rollback(ctx)
		}
		release(ctx, c, t.leaked)
	}()
	if err := fn(ctx, t); err != nil {
		return err
	}
	t.done = true
	if err := t.commit(ctx); err != nil {
		return err
	}
	committed = true
	return nil
}

// ownerTx is the Tx implementation. The transaction opens lazily: BEGIN and the owner's
// set_config are queued in front of fn's first statement, so a transaction costs no extra
// round trip for them.
type ownerTx struct {
	conn    *pgx.Conn
	owner   owner.ID
	setting string // the value app.owner_id gets: the owner's UUID, or "" for no owner
	begin   string
	started bool  // BEGIN was sent
	failed  error // BEGIN or set_config failed: nothing more may run
	done    bool  // fn returned: the handle is dead
	leaked  bool  // app.owner_id was found set for the session: the connection must go
}

func (t *ownerTx) Owner() owner.ID { return t.owner }

func (t *ownerTx) usable() error {
	switch {
	case t.done:
		return pgx.ErrTxClosed
	case t.failed != nil:
		return t.failed
	}
	return nil
}

// prelude returns a batch that opens the transaction and sets the owner.
func (t *ownerTx) prelude() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(t.begin)
	b.Queue(preludeSQL, t.setting)
	return b
}

// send sends a batch that starts with the prelude and reads the prelude's results.
func (t *ownerTx) send(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	t.started = true
	br := t.conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.failed = fmt.Errorf("database: begin: %w", err)
		return br, t.failed
	}
	leaked, err := readPrelude(br, 1)
	if err != nil {
		t.leaked = t.leaked || leaked
		t.failed = err
		return br, err
	}
	return br, nil
}

// start opens the transaction on its own, for a first statement pgx cannot run in a batch.
func (t *ownerTx) start(ctx context.Context) error {
	if t.started {
		return nil
	}
	br, err := t.send(ctx, t.prelude())
	if cerr := br.Close(); err == nil && cerr != nil {
		t.failed = fmt.Errorf("database: begin: %w", cerr)
		err = t.failed
	}
	return err
}

// batchable reports whether a first statement can ride in the prelude's batch: pgx batches
// take no per-query execution mode or result formats.
func batchable(args []any) bool {
	if len(args) == 0 {
		return true
	}
	switch args[0].(type) {
	case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
		return false
	}
	return true
}

func (t *ownerTx) Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error) {
	if err := t.usable(); err != nil {
		return pgconn.CommandTag{}, err
	}
	// pgx runs an Exec without arguments over the simple protocol (several statements in one
	// string are allowed there and not in a batch), so such a first Exec does not ride along.
	if t.started || len(arguments) == 0 || !batchable(arguments) {
		if err := t.start(ctx); err != nil {
			return pgconn.CommandTag{}, err
		}
		return t.conn.Exec(ctx, sql, arguments...)
	}
	b := t.prelude()
	b.Queue(sql, arguments...)
	br, err := t.send(ctx, b)
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *ownerTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.usable(); err != nil {
		return errRows{err}, err
	}
	if t.started || !batchable(args) {
		if err := t.start(ctx); err != nil {
			return errRows{err}, err
		}
		return t.conn.Query(ctx, sql, args...)
	}
	b := t.prelude()
	b.Queue(sql, args...)
	br, err := t.send(ctx, b)
	if err != nil {
		_ = br.Close() // err already says what went wrong
		return errRows{err}, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return errRows{err}, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *ownerTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &rowsRow{rows: rows, err: err}
}

func (t *ownerTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.usable(); err != nil {
		return errBatch{err}
	}
	if t.started {
		return t.conn.SendBatch(ctx, b)
	}
	nb := t.prelude()
	nb.QueuedQueries = append(nb.QueuedQueries, b.QueuedQueries...)
	br, err := t.send(ctx, nb)
	if err != nil {
		_ = br.Close()
		return errBatch{err}
	}
	// The prelude's results are read; what is left are the caller's, in order.
	return br
}

func (t *ownerTx) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if err := t.usable(); err != nil {
		return 0, err
	}
	if err := t.start(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, tableName, columnNames, rowSrc)
}

// commit commits and, in the same round trip, checks that app.owner_id did not outlive the
// transaction (which only a session-level setting made inside fn could cause).
func (t *ownerTx) commit(ctx context.Context) error {
	if t.failed != nil {
		return t.failed
	}
	if !t.started {
		return nil // fn ran nothing: there is no transaction to end
	}
	if t.conn.PgConn().TxStatus() == 'E' {
		// A statement failed and fn went on: COMMIT would only roll back.
		return fmt.Errorf("database: commit: %w", pgx.ErrTxCommitRollback)
	}
	b := &pgx.Batch{}
	b.Queue("commit")
	b.Queue(afterCommitSQL)
	br := t.conn.SendBatch(ctx, b)
	tag, err := br.Exec()
	var after pgtype.Text
	if err == nil {
		err = br.QueryRow().Scan(&after)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("database: commit: %w", err)
	case tag.String() == "ROLLBACK":
		return fmt.Errorf("database: commit: %w", pgx.ErrTxCommitRollback)
	case after.String != "":
		// The transaction did commit; the error reports the defect, and the connection goes.
		t.leaked = true
		return fmt.Errorf("database: after commit: %w", ErrOwnerLeaked)
	}
	return nil
}

// rollback ends a transaction left open. If it cannot, the connection stays in its
// transaction and release closes it.
func (t *ownerTx) rollback(ctx context.Context) {
	pc := t.conn.PgConn()
	if pc.IsClosed() || pc.IsBusy() || pc.TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = t.conn.Exec(rctx, "rollback")
}

// batchRows are the rows of a first statement sent in the prelude's batch: closing them
// closes the batch too, which frees the connection for the next statement.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Scan(dest ...any) error {
	err := r.Rows.Scan(dest...)
	if err != nil {
		r.Close()
	}
	return err
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// rowsRow is a pgx.Row over Rows, with pgx's QueryRow semantics.
type rowsRow struct {
	rows pgx.Rows
	err  error
}

func (r *rowsRow) Scan(dest ...any) error {
	if r.err != nil {
		r.rows.Close()
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// errRows, errRow and errBatch carry an error where pgx's API returns a value that carries
// it (pgx code reads results even when the call already returned the error).
type errRows struct{ err error }

func (errRows) Close()                                       {}
func (e errRows) Err() error                                 { return e.err }
func (errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                          { return e.err }
func (e errRows) Values() ([]any, error)                     { return nil, e.err }
func (errRows) RawValues() [][]byte                          { return nil }
func (errRows) Conn() *pgx.Conn                              { return nil }
func (errRows) TypeMap() *pgtype.Map                         { return nil }

type errBatch struct{ err error }

func (e errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatch) Query() (pgx.Rows, error)         { return errRows(e), e.err }
func (e errBatch) QueryRow() pgx.Row                { return &rowsRow{rows: errRows(e), err: e.err} }
func (e errBatch) Close() error                     { return e.err }
func (errBatch) Tx() pgx.Tx                         { return nil }
