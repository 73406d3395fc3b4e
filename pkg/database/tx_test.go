package database_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"
)

// readAll reads every row the transaction can see, with no WHERE on owner_id (RLS is the
// only filter), and fails on any row of another tenant.
func readAll(ctx context.Context, tx database.Tx) (int, error) {
	rows, _ := tx.Query(ctx, `select owner_id from items`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[owner.ID])
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if id != tx.Owner() {
			return 0, fmt.Errorf("tenant %s saw a row of tenant %s", tx.Owner(), id)
		}
	}
	return len(ids), nil
}

func insertItem(ctx context.Context, tx database.Tx, body string) error {
	_, err := tx.Exec(ctx, `insert into items (owner_id, body) values ($1, $2)`, tx.Owner(), body)
	return err
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestOwnerTxNeverCrossesTenants drives thousands of requests for three tenants through one
// pooled connection, with failures of every kind mixed in, and checks after each one that a
// tenant saw and changed only its own rows, that nothing failed left a row behind, and that
// the connection ends up holding no owner.
func TestOwnerTxNeverCrossesTenants(t *testing.T) {
	env := newItemsEnv(t, database.Options{MaxConns: 1})
	db := env.DB
	ctx := t.Context()
	tenants := []owner.ID{owner.New(), owner.New(), owner.New()}
	committed := map[owner.ID]int{}
	errPlanned := errors.New("planned failure")

	const requests = 3000
	start := time.Now()
	for i := range requests {
		o := tenants[i%len(tenants)]
		want := committed[o]
		var err error
		kind := i % 10
		if i%100 == 55 {
			kind = 10 // rarer: cancelled while the server runs a statement
		}
		switch kind {
		case 0: // write first (rides with BEGIN), then read back with no WHERE
			err = db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
				if err := insertItem(ctx, tx, "w"); err != nil {
					return err
				}
				n, err := readAll(ctx, tx)
				if err == nil && n != want+1 {
					err = fmt.Errorf("tenant sees %d rows, want %d", n, want+1)
				}
				return err
			})
			require.NoError(t, err, "request %d", i)
			committed[o]++
		case 1: // read first (rides with BEGIN), then write
			err = db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
				n, err := readAll(ctx, tx)
				if err != nil {
					return err
				}
				if n != want {
					return fmt.Errorf("tenant sees %d rows, want %d", n, want)
				}
				return insertItem(ctx, tx, "r")
			})
			require.NoError(t, err, "request %d", i)
			committed[o]++
		case 2: // a batch first
			err = db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
				b := &pgx.Batch{}
				b.Queue(`insert into items (owner_id, body) values ($1, 'b')`, o)
				b.Queue(`select count(*), count(*) filter (where owner_id <> $1) from items`, o)
				br := tx.SendBatch(ctx, b)
				if _, err := br.Exec(); err != nil {
					return errors.Join(err, br.Close())
				}
				var n, foreign int
				if err := br.QueryRow().Scan(&n, &foreign); err != nil {
					return errors.Join(err, br.Close())
				}
				if n != want+1 || foreign != 0 {
					return errors.Join(fmt.Errorf("batch saw %d rows, %d foreign", n, foreign), br.Close())
				}
				return br.Close()
			})
			require.NoError(t, err, "request %d", i)
			committed[o]++
		case 3: // the one-round-trip read path, no WHERE on owner_id
			var n, foreign int
			err = db.QueryRow(ctx, o, `select count(*), count(*) filter (where owner_id <> $1) from items`, o).Scan(&n, &foreign)
			require.NoError(t, err, "request %d", i)
			require.Equal(t, want, n, "request %d", i)
			require.Zero(t, foreign, "request %d", i)
		case 4: // fn fails after writing: nothing stays
			err = db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
				if err := insertItem(ctx, tx, "x"); err != nil {
					return err
				}
				return errPlanned
			})
			require.ErrorIs(t, err, errPlanned, "request %d", i)
		case 5: // context cancelled before the request
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			err = db.Tx(cctx, o, func(ctx context.Context, tx database.Tx) error { return insertItem(ctx, tx, "x") })
			require.ErrorIs(t, err, context.Canceled, "request %d", i)
		case 6: // context cancelled inside fn, between statements
			cctx, cancel := context.WithCancel(ctx)
			err = db.Tx(cctx, o, func(ctx context.Context, tx database.Tx) error {
				if err := insertItem(ctx, tx, "x"); err != nil {
					return err
				}
				cancel()
				return insertItem(ctx, tx, "x")
			})
			cancel()
			require.ErrorIs(t, err, context.Canceled, "request %d", i)
		case 7: // a statement fails; fn either returns the error or swallows it
			swallow := i%20 == 7
			err = db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
				if err := insertItem(ctx, tx, "x"); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `select 1 / (count(*) - count(*)) from items where owner_id = $1`, o)
				if swallow {
					return nil
				}
				return err
			})
			if swallow {
				require.ErrorIs(t, err, pgx.ErrTxCommitRollback, "request %d", i)
			} else {
				require.Equal(t, "22012", pgCode(err), "request %d: %v", i, err)
			}
		case 8: // no owner: no rows, no writes
			err = db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
				var n int
				if err := tx.QueryRow(ctx, `select count(*) from items`).Scan(&n); err != nil {
					return err
				}
				if n != 0 {
					return fmt.Errorf("no owner sees %d rows", n)
				}
				return nil
			})
			require.NoError(t, err, "request %d", i)
		case 9: // fn panics after writing
			require.Panics(t, func() {
				_ = db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
					if err := insertItem(ctx, tx, "x"); err != nil {
						return err
					}
					panic("planned panic")
				})
			}, "request %d", i)
		case 10: // cancelled while the server is running a statement
			cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			err = db.Tx(cctx, o, func(ctx context.Context, tx database.Tx) error {
				if err := insertItem(ctx, tx, "x"); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `select pg_sleep(0.3)`)
				return err
			})
			cancel()
			require.Error(t, err, "request %d", i)
		}
	}
	t.Logf("%d requests in %v", requests, time.Since(start))

	total := 0
	for _, o := range tenants {
		var n, foreign int
		require.NoError(t, db.QueryRow(ctx, o,
			`select count(*), count(*) filter (where owner_id <> $1) from items`, o).Scan(&n, &foreign))
		require.Equal(t, committed[o], n, "only committed rows stay")
		require.Zero(t, foreign)
		total += n
	}
	var all int
	require.NoError(t, env.Migrator.QueryRow(ctx, `select count(*) from items`).Scan(&all))
	require.Equal(t, total, all, "every row in the table belongs to a committed request of its owner")

	require.LessOrEqual(t, database.PoolStatForTest(db).TotalConns(), int32(1))
	setting, status, err := database.IdleConnStateForTest(ctx, db)
	require.NoError(t, err)
	require.Empty(t, setting.String, "the pooled connection holds no owner")
	require.Equal(t, byte('I'), status, "the pooled connection is not in a transaction")
}

func TestNoOwnerSeesNothing(t *testing.T) {
	env := newItemsEnv(t, database.Options{})
	ctx := t.Context()
	o := owner.New()
	_, err := env.Migrator.Exec(ctx, `insert into items (owner_id, body) values ($1, 'seeded'), ($2, 'other')`, o, owner.New())
	require.NoError(t, err)

	tests := []struct {
		name string
		run  func(ctx context.Context, tx database.Tx) error
		code string
	}{
		{
			name: "select sees no rows",
			run: func(ctx context.Context, tx database.Tx) error {
				var n int
				if err := tx.QueryRow(ctx, `select count(*) from items`).Scan(&n); err != nil {
					return err
				}
				if n != 0 {
					return fmt.Errorf("saw %d rows", n)
				}
				return nil
			},
		},
		{
			name: "update changes nothing",
			run: func(ctx context.Context, tx database.Tx) error {
				tag, err := tx.Exec(ctx, `update items set body = 'changed'`)
				if err == nil && tag.RowsAffected() != 0 {
					err = fmt.Errorf("updated %d rows", tag.RowsAffected())
				}
				return err
			},
		},
		{
			name: "insert is refused",
			run: func(ctx context.Context, tx database.Tx) error {
				_, err := tx.Exec(ctx, `insert into items (owner_id, body) values ($1, 'x')`, o)
				return err
			},
			code: "42501",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := env.DB.SystemTx(ctx, tt.run)
			if tt.code == "" {
				require.NoError(t, err)
			} else {
				require.Equal(t, tt.code, pgCode(err), "%v", err)
			}
		})
	}
	var bodies []string
	rows, _ := env.Migrator.Query(ctx, `select body from items order by body`)
	bodies, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"other", "seeded"}, bodies)
}

func TestZeroOwnerIsRefused(t *testing.T) {
	env := newItemsEnv(t, database.Options{})
	ctx := t.Context()
	ran := false
	err := env.DB.Tx(ctx, owner.ID{}, func(context.Context, database.Tx) error { ran = true; return nil })
	require.ErrorIs(t, err, database.ErrNoOwner)
	require.False(t, ran)
	var n int
	require.ErrorIs(t, env.DB.QueryRow(ctx, owner.ID{}, `select 1`).Scan(&n), database.ErrNoOwner)
}

// TestRLSIsTheNet shows what the database refuses or hides even when the code gets it wrong.
func TestRLSIsTheNet(t *testing.T) {
	env := newItemsEnv(t, database.Options{})
	ctx := t.Context()
	alice, bob := owner.New(), owner.New()
	_, err := env.Migrator.Exec(ctx,
		`insert into items (owner_id, body) values ($1, 'alice 1'), ($1, 'alice 2'), ($2, 'bob 1')`, alice, bob)
	require.NoError(t, err)

	t.Run("a query that forgets WHERE owner_id returns only the owner's rows", func(t *testing.T) {
		var bodies []string
		err := env.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
			rows, _ := tx.Query(ctx, `select body from items order by body`)
			var err error
			bodies, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []string{"alice 1", "alice 2"}, bodies)
	})
	t.Run("an update or delete that forgets WHERE touches only the owner's rows", func(t *testing.T) {
		err := env.DB.Tx(ctx, bob, func(ctx context.Context, tx database.Tx) error {
			tag, err := tx.Exec(ctx, `update items set body = body || ' (seen by bob)'`)
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("updated %d rows", tag.RowsAffected())
			}
			return err
		})
		require.NoError(t, err)
		var untouched int
		require.NoError(t, env.Migrator.QueryRow(ctx,
			`select count(*) from items where owner_id = $1 and body not like '%bob)'`, alice).Scan(&untouched))
		require.Equal(t, 2, untouched)
	})
	t.Run("an insert carrying another owner's owner_id is refused by WITH CHECK", func(t *testing.T) {
		err := env.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
			_, err := tx.Exec(ctx, `insert into items (owner_id, body) values ($1, 'planted')`, bob)
			return err
		})
		require.Equal(t, "42501", pgCode(err), "%v", err)
	})
	t.Run("the runtime role cannot move a row to another owner", func(t *testing.T) {
		err := env.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
			_, err := tx.Exec(ctx, `update items set owner_id = $1 where owner_id = $2`, bob, alice)
			return err
		})
		require.Error(t, err)
	})
	t.Run("the database refuses an owner_id change even from the table owner", func(t *testing.T) {
		// The migration role owns the table and has BYPASSRLS: only the trigger stands in
		// its way.
		_, err := env.Migrator.Exec(ctx, `update items set owner_id = $1 where owner_id = $2`, bob, alice)
		require.Equal(t, "23001", pgCode(err), "%v", err)
		require.ErrorContains(t, err, "immutable")
		_, err = env.Migrator.Exec(ctx, `update items set body = 'fine' where owner_id = $1`, bob)
		require.NoError(t, err, "other columns still change")
	})
	t.Run("the read path refuses writes", func(t *testing.T) {
		var id int64
		err := env.DB.QueryRow(ctx, alice, `insert into items (owner_id, body) values ($1, 'w') returning id`, alice).Scan(&id)
		require.Equal(t, "25006", pgCode(err), "%v", err)
	})
	t.Run("a reader gets no row of another tenant by its key", func(t *testing.T) {
		var bobID int64
		require.NoError(t, env.Migrator.QueryRow(ctx, `select id from items where owner_id = $1`, bob).Scan(&bobID))
		var body string
		err := env.DB.QueryRow(ctx, alice, `select body from items where id = $1`, bobID).Scan(&body)
		require.ErrorIs(t, err, pgx.ErrNoRows)
	})
}

// TestSessionLevelOwnerIsCaught plants app.owner_id for the session on the pooled
// connection, as a defect would, and shows every path refuses to run on it and throws the
// connection away.
func TestSessionLevelOwnerIsCaught(t *testing.T) {
	// Each run reports through ran whether its statement ran to completion on the planted
	// connection: it must not.
	tests := []struct {
		name string
		run  func(ctx context.Context, db *database.DB, o owner.ID, ran *bool) error
	}{
		{
			name: "Tx",
			run: func(ctx context.Context, db *database.DB, o owner.ID, ran *bool) error {
				return db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
					err := insertItem(ctx, tx, "on a planted connection")
					*ran = err == nil
					return err
				})
			},
		},
		{
			name: "QueryRow",
			run: func(ctx context.Context, db *database.DB, o owner.ID, ran *bool) error {
				var n int
				err := db.QueryRow(ctx, o, `select count(*) from items`).Scan(&n)
				*ran = err == nil
				return err
			},
		},
		{
			name: "SystemTx",
			run: func(ctx context.Context, db *database.DB, _ owner.ID, ran *bool) error {
				return db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
					_, err := tx.Exec(ctx, `select count(*) from items where owner_id = $1`, owner.New())
					*ran = err == nil
					return err
				})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newItemsEnv(t, database.Options{MaxConns: 1})
			ctx := t.Context()
			victim, intruder := owner.New(), owner.New()
			require.NoError(t, database.PlantSessionOwnerForTest(ctx, env.DB, intruder))
			created := database.PoolStatForTest(env.DB).NewConnsCount()

			ran := false
			err := tt.run(ctx, env.DB, victim, &ran)
			require.ErrorIs(t, err, database.ErrOwnerLeaked)
			require.False(t, ran, "the statement was refused, not run")
			var rows int
			require.NoError(t, env.Migrator.QueryRow(ctx, `select count(*) from items`).Scan(&rows))
			require.Zero(t, rows, "nothing was written")

			require.NoError(t, tt.run(ctx, env.DB, victim, &ran), "the next request runs on a fresh connection")
			require.True(t, ran)
			require.Equal(t, created+1, database.PoolStatForTest(env.DB).NewConnsCount(), "the planted connection was replaced")
			setting, _, err := database.IdleConnStateForTest(ctx, env.DB)
			require.NoError(t, err)
			require.Empty(t, setting.String)
		})
	}

	t.Run("set inside fn, caught at commit", func(t *testing.T) {
		env := newItemsEnv(t, database.Options{MaxConns: 1})
		ctx := t.Context()
		o := owner.New()
		err := env.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
			// Deliberately the defect the repository forbids: a session-level setting.
			_, err := tx.Exec(ctx, `select set_config('app.owner_id', $1, false)`, o.String())
			return err
		})
		require.ErrorIs(t, err, database.ErrOwnerLeaked)
		setting, _, err := database.IdleConnStateForTest(ctx, env.DB)
		require.NoError(t, err)
		require.Empty(t, setting.String, "the connection that carried it is gone")
	})
}

func TestTxRetriesSerializationFailures(t *testing.T) {
	tests := []struct {
		name        string
		maxAttempts int
		wantErr     bool
	}{
		{name: "retried until it commits", maxAttempts: 0},
		{name: "surfaces with retries off", maxAttempts: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newItemsEnv(t, database.Options{MaxConns: 2, MaxTxAttempts: tt.maxAttempts})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			o := owner.New()
			serializable := database.TxOptions{IsoLevel: pgx.Serializable}
			aRead, bRead, aDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var aAttempts, bAttempts int

			// Write skew: each transaction counts the rows and inserts one recording the
			// count. A commits first; B, which counted before A's row existed, cannot
			// serialize after it.
			skew := func(attempts *int, mine, other, before chan struct{}) func(context.Context, database.Tx) error {
				return func(ctx context.Context, tx database.Tx) error {
					*attempts++
					var n int
					if err := tx.QueryRow(ctx, `select count(*) from items`).Scan(&n); err != nil {
						return err
					}
					if *attempts == 1 {
						close(mine)
						for _, ch := range []chan struct{}{other, before} {
							if ch == nil {
								continue
							}
							select {
							case <-ch:
							case <-ctx.Done():
								return ctx.Err()
							}
						}
					}
					_, err := tx.Exec(ctx, `insert into items (owner_id, body) values ($1, $2)`, o, fmt.Sprint("counted ", n))
					return err
				}
			}
			aErr := make(chan error, 1)
			go func() {
				aErr <- env.DB.TxWith(ctx, o, serializable, skew(&aAttempts, aRead, bRead, nil))
				close(aDone)
			}()
			bErr := env.DB.TxWith(ctx, o, serializable, skew(&bAttempts, bRead, aRead, aDone))
			require.NoError(t, <-aErr)
			require.Equal(t, 1, aAttempts)

			rows, _ := env.Migrator.Query(ctx, `select body from items order by body`)
			bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			if tt.wantErr {
				require.Equal(t, "40001", pgCode(bErr), "%v", bErr)
				require.Equal(t, 1, bAttempts)
				require.Equal(t, []string{"counted 0"}, bodies)
				return
			}
			require.NoError(t, bErr)
			require.Equal(t, 2, bAttempts, "B ran again after the serialization failure")
			require.Equal(t, []string{"counted 0", "counted 1"}, bodies)
		})
	}
}

func TestTxOptions(t *testing.T) {
	env := newItemsEnv(t, database.Options{})
	ctx := t.Context()
	o := owner.New()
	err := env.DB.TxWith(ctx, o, database.TxOptions{ReadOnly: true}, func(ctx context.Context, tx database.Tx) error {
		return insertItem(ctx, tx, "x")
	})
	require.Equal(t, "25006", pgCode(err), "%v", err)
	err = env.DB.TxWith(ctx, o, database.TxOptions{IsoLevel: "chaotic"}, func(context.Context, database.Tx) error { return nil })
	require.ErrorContains(t, err, "isolation level")
}

// TestTxFirstStatementForms covers the first statements that cannot ride in the prelude's
// batch (no arguments, a pgx query option, COPY): each still runs inside the owner's
// transaction.
func TestTxFirstStatementForms(t *testing.T) {
	env := newItemsEnv(t, database.Options{MaxConns: 1})
	ctx := t.Context()
	tests := []struct {
		name     string
		body     string
		first    func(ctx context.Context, tx database.Tx) error
		wantCode string
	}{
		{
			name: "Exec without arguments",
			body: "a",
			first: func(ctx context.Context, tx database.Tx) error {
				_, err := tx.Exec(ctx, `insert into items (owner_id, body) select nullif(current_setting('app.owner_id'), '')::uuid, 'a'; select 1`)
				return err
			},
		},
		{
			name: "Exec with an exec mode",
			body: "b",
			first: func(ctx context.Context, tx database.Tx) error {
				_, err := tx.Exec(ctx, `insert into items (owner_id, body) values ($1, 'b')`, pgx.QueryExecModeSimpleProtocol, tx.Owner())
				return err
			},
		},
		{
			// PostgreSQL refuses COPY FROM into a table with row-level security, so CopyFrom
			// cannot load a tenant table; it still runs inside the owner's transaction.
			name: "CopyFrom",
			body: "c",
			first: func(ctx context.Context, tx database.Tx) error {
				_, err := tx.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"owner_id", "body"},
					pgx.CopyFromRows([][]any{{tx.Owner(), "c"}}))
				return err
			},
			wantCode: "0A000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := owner.New()
			err := env.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
				if err := tt.first(ctx, tx); err != nil {
					return err
				}
				n, err := readAll(ctx, tx)
				if err == nil && n != 1 {
					err = fmt.Errorf("saw %d rows", n)
				}
				return err
			})
			if tt.wantCode != "" {
				require.Equal(t, tt.wantCode, pgCode(err), "%v", err)
				return
			}
			require.NoError(t, err)
			rows, _ := env.Migrator.Query(ctx, `select owner_id from items where body = $1`, tt.body)
			owners, err := pgx.CollectRows(rows, pgx.RowTo[owner.ID])
			require.NoError(t, err)
			require.Equal(t, []owner.ID{o}, owners)
		})
	}
}

func TestOpenRefusesSessionOwner(t *testing.T) {
	env := newItemsEnv(t, database.Options{})
	_, err := database.Open(t.Context(), env.RuntimeURL+"&options=-c%20app.owner_id%3D0b0f6a35-6d1f-4c43-9f0f-3f4d2c1b0a99", database.Options{})
	require.ErrorContains(t, err, "per transaction")
}
