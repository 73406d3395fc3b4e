package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// RestoreStore implements vault.RestoreStore for `secrets-vault restore-keyring`: one
// connection of the migration role (the tables' owner) to a vault database restored from a
// dump, while the vault is stopped. Each owner's writes are one transaction acting for that
// owner (app.owner_id set transaction-locally, as the owner policy reads it), so they pass
// row-level security whether or not the role bypasses it, and the tables' triggers and
// foreign keys apply as to any write.
type RestoreStore struct {
	conn *pgx.Conn
}

// OpenRestore connects to the database at migrationURL (the migration role's).
func OpenRestore(ctx context.Context, migrationURL string) (*RestoreStore, error) {
	cfg, err := pgx.ParseConfig(migrationURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: restore: %w", err)
	}
	cfg.RuntimeParams["search_path"] = Schema
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: restore: connect: %w", err)
	}
	return &RestoreStore{conn: conn}, nil
}

// Close closes the connection.
func (s *RestoreStore) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// RestoreTx implements vault.RestoreStore.
func (s *RestoreStore) RestoreTx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx vault.RestoreTx) error) error {
	if o.IsZero() {
		return errors.New("postgres: restore: no owner given")
	}
	return pgx.BeginFunc(ctx, s.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('app.owner_id', $1, true)`, o.String()); err != nil {
			return fmt.Errorf("postgres: restore: set owner: %w", err)
		}
		return fn(ctx, &restoreTx{tx: tx, owner: o})
	})
}

// Keyrings implements vault.RestoreStore. Listing every tenant's keyring needs a role that
// bypasses row-level security (the migration role of pkg/database does); for any other role
// it reports the list incomplete instead of returning the rows its policy happens to show.
func (s *RestoreStore) Keyrings(ctx context.Context) ([]vault.StoredKeyring, bool, error) {
	var (
		out      []vault.StoredKeyring
		complete bool
	)
	err := pgx.BeginTxFunc(ctx, s.conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&complete); err != nil {
			return err
		}
		if !complete {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT k.owner_id, k.current_version, k.min_decrypt_version,
				ARRAY(SELECT t.version FROM tenant_keys t WHERE t.owner_id = k.owner_id ORDER BY t.version)
			FROM keyrings k WHERE k.shredded_at IS NULL ORDER BY k.owner_id`)
		if err != nil {
			return err
		}
		var (
			id        owner.ID
			cur, min  int32
			versions  []int32
			converted []uint32
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &cur, &min, &versions}, func() error {
			converted = make([]uint32, len(versions))
			for i, v := range versions {
				converted[i] = uint32(v)
			}
			out = append(out, vault.StoredKeyring{Owner: id, Current: uint32(cur), MinDecrypt: uint32(min), Versions: converted})
			return nil
		})
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("postgres: restore: keyrings: %w", err)
	}
	return out, complete, nil
}

type restoreTx struct {
	tx    pgx.Tx
	owner owner.ID
}

func (t *restoreTx) Keyring(ctx context.Context) (vault.KeyringState, error) {
	return scanKeyring(t.tx.QueryRow(ctx, selectKeyring+" FOR UPDATE", t.owner))
}

func (t *restoreTx) CreateKeyring(ctx context.Context, current, minDecrypt uint32) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO keyrings (owner_id, current_version, min_decrypt_version) VALUES ($1, $2, $3)`,
		t.owner, int32(current), int32(minDecrypt))
	if err != nil {
		return fmt.Errorf("postgres: restore: create keyring: %w", err)
	}
	return nil
}

func (t *restoreTx) RaiseCurrent(ctx context.Context, current uint32) error {
	_, err := t.tx.Exec(ctx, `UPDATE keyrings SET current_version = $2, updated_at = now()
		WHERE owner_id = $1 AND shredded_at IS NULL AND current_version < $2`, t.owner, int32(current))
	if err != nil {
		return fmt.Errorf("postgres: restore: raise current version: %w", err)
	}
	return nil
}

// sqlRestoreKey inserts a key version unless one is stored and, in the same statement, compares
// the stored one (the statement's snapshot does not see its own insert, so the comparison reads
// NULL when it inserted).
const sqlRestoreKey = `WITH ins AS (
		INSERT INTO tenant_keys (owner_id, version, kek_id, wrapped, created_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (owner_id, version) DO NOTHING
		RETURNING 1)
	SELECT EXISTS (SELECT 1 FROM ins),
		coalesce((SELECT t.kek_id = $3 AND t.wrapped = $4 FROM tenant_keys t WHERE t.owner_id = $1 AND t.version = $2), false)`

func (t *restoreTx) RestoreKey(ctx context.Context, k vault.WrappedKey) (vault.KeyOutcome, error) {
	if k.Owner != t.owner {
		return 0, errors.New("postgres: restore key: owner differs from the transaction's")
	}
	var inserted, same bool
	err := t.tx.QueryRow(ctx, sqlRestoreKey, t.owner, int32(k.Version), k.KEKID, k.Wrapped, k.Created).Scan(&inserted, &same)
	switch {
	case err != nil:
		return 0, fmt.Errorf("postgres: restore key: %w", err)
	case inserted:
		return vault.KeyInserted, nil
	case same:
		return vault.KeyPresent, nil
	}
	return vault.KeyConflict, nil
}
