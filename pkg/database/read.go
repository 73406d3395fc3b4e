package database

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/forgeapps/backbone/pkg/owner"
)

// QueryRow runs one read-only statement for owner o in one round trip and returns its row,
// with pgx's QueryRow semantics (the work happens in Scan; no row is pgx.ErrNoRows). The
// owner's set_config and the statement travel as one batch, which PostgreSQL runs as one
// implicit transaction, so the setting ends with it. That transaction is read-only: a write
// fails (SQLSTATE 25006); writes go through Tx. The zero owner is refused with ErrNoOwner.
func (db *DB) QueryRow(ctx context.Context, o owner.ID, sql string, args ...any) pgx.Row {
	return &ownerRow{db: db, ctx: ctx, owner: o, sql: sql, args: args}
}

type ownerRow struct {
	db    *DB
	ctx   context.Context
	owner owner.ID
	sql   string
	args  []any
}

func (r *ownerRow) Scan(dest ...any) error {
	if r.owner.IsZero() {
		return ErrNoOwner
	}
	if !batchable(r.args) {
		return errors.New("database: QueryRow takes no pgx query option")
	}
	c, err := r.db.pool.Acquire(r.ctx)
	if err != nil {
		return fmt.Errorf("database: acquire: %w", err)
	}
	leaked := false
	defer func() { release(r.ctx, c, leaked) }()

	b := &pgx.Batch{}
	b.Queue(readPreludeSQL, r.owner.String())
	b.Queue(r.sql, r.args...)
	br := c.Conn().SendBatch(r.ctx, b)
	leaked, err = readPrelude(br, 2)
	if err == nil {
		err = br.QueryRow().Scan(dest...)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}
