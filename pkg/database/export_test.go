package database

import (
	"context"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/forgeapps/backbone/pkg/owner"
)

// PoolStatForTest exposes the runtime pool's statistics to the external tests.
func PoolStatForTest(db *DB) *pgxpool.Stat { return db.pool.Stat() }

// IdleConnStateForTest acquires a pooled connection directly, bypassing every path of the
// package (which would set app.owner_id themselves), and reports what the connection holds:
// app.owner_id as the session sees it and the transaction status.
func IdleConnStateForTest(ctx context.Context, db *DB) (setting pgtype.Text, txStatus byte, err error) {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return setting, 0, err
	}
	defer c.Release()
	txStatus = c.Conn().PgConn().TxStatus()
	err = c.Conn().QueryRow(ctx, `select current_setting('app.owner_id', true)`).Scan(&setting)
	return setting, txStatus, err
}

// PlantSessionOwnerForTest sets app.owner_id for the session on a pooled connection and puts
// it back in the pool: the defect every path must catch.
func PlantSessionOwnerForTest(ctx context.Context, db *DB, o owner.ID) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	_, err = c.Conn().Exec(ctx, `select set_config('app.owner_id', $1, false)`, o.String())
	return err
}
