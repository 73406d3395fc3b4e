// Package postgres is the vault's storage: its embedded migrations and the SQL behind the
// vault.Store interface, every statement inside the owner transaction of pkg/database and
// filtered by owner_id itself (row-level security is the net, not the filter).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// Schema is the vault's Postgres schema.
const Schema = "vault"

// SourceName names the vault's migration source.
const SourceName = "vault"

// KeyTable is the table holding the wrapped tenant data keys: the only key material in the
// database. The database backup job must exclude its data (pg_dump
// --exclude-table-data=vault.tenant_keys): the vault's keyring backups are the only backup of
// keys, which is what lets a shred reach every copy.
const KeyTable = "tenant_keys"

// KeyringTable holds each tenant's key policy and, after a shred, its tombstone (owner_id, the
// shred time and the versions destroyed; no key material). The tombstone outlives the purge
// on purpose.
const KeyringTable = "keyrings"

// The reviewed SECURITY DEFINER functions of the schema (posture allowlist).
const (
	FuncRewrapStaleOwners = "rewrap_stale_owners"
	FuncAuditPurge        = "audit_purge"
)

// DefinerFunctions lists the schema's SECURITY DEFINER functions, the events ones included.
func DefinerFunctions() []string {
	return append(events.SecurityDefinerFunctions(), FuncRewrapStaleOwners, FuncAuditPurge)
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the vault's migrations (files at the root).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic("postgres: embedded migrations: " + err.Error()) // a build-time constant path
	}
	return sub
}

// Sources are the migration sources of the vault schema, in order.
func Sources() []database.Source {
	return []database.Source{
		{Name: events.MigrationSourceName, FS: events.Migrations()},
		{Name: SourceName, FS: Migrations()},
	}
}

// Store implements vault.Store.
type Store struct {
	db *database.DB
}

// NewStore returns the store over the runtime pool.
func NewStore(db *database.DB) *Store { return &Store{db: db} }

// Tx implements vault.Store.
func (s *Store) Tx(ctx context.Context, o owner.ID, fn func(ctx context.Context, tx vault.StoreTx) error) error {
	return s.db.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
		return fn(ctx, &storeTx{tx: tx, owner: o})
	})
}

// StaleOwners implements vault.Store through the reviewed definer function.
func (s *Store) StaleOwners(ctx context.Context, limit int) ([]owner.ID, error) {
	var out []owner.ID
	err := s.db.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT * FROM rewrap_stale_owners($1)`, limit)
		if err != nil {
			return err
		}
		var id owner.ID
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			out = append(out, id)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: stale owners: %w", err)
	}
	return out, nil
}

type storeTx struct {
	tx    database.Tx
	owner owner.ID
}

const selectKeyring = `SELECT current_version, min_decrypt_version, shredded_at, versions_destroyed,
	secrets_deleted, rows_deleted FROM keyrings WHERE owner_id = $1`

func (t *storeTx) Keyring(ctx context.Context, lock bool) (vault.KeyringState, error) {
	q := selectKeyring
	if lock {
		q += " FOR UPDATE"
	}
	return scanKeyring(t.tx.QueryRow(ctx, q, t.owner))
}

func scanKeyring(row pgx.Row) (vault.KeyringState, error) {
	var (
		st        vault.KeyringState
		cur, min  int32
		shredded  *time.Time
		destroyed []int32
	)
	if err := row.Scan(&cur, &min, &shredded, &destroyed, &st.SecretsDeleted, &st.RowsDeleted); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return vault.KeyringState{}, vault.ErrNoKeyring
		}
		return vault.KeyringState{}, fmt.Errorf("postgres: keyring: %w", err)
	}
	st.Current, st.MinDecrypt = uint32(cur), uint32(min)
	if shredded != nil {
		st.Shredded, st.ShreddedAt = true, *shredded
	}
	for _, v := range destroyed {
		st.Destroyed = append(st.Destroyed, uint32(v))
	}
	return st, nil
}

func (t *storeTx) CreateKeyring(ctx context.Context) (bool, error) {
	tag, err := t.tx.Exec(ctx, `INSERT INTO keyrings (owner_id, current_version, min_decrypt_version)
		VALUES ($1, 1, 1) ON CONFLICT (owner_id) DO NOTHING`, t.owner)
	if err != nil {
		return false, fmt.Errorf("postgres: create keyring: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *storeTx) SetKeyring(ctx context.Context, current, minDecrypt uint32) error {
	_, err := t.tx.Exec(ctx, `UPDATE keyrings SET current_version = $2, min_decrypt_version = $3, updated_at = now()
		WHERE owner_id = $1`, t.owner, int32(current), int32(minDecrypt))
	if err != nil {
		return fmt.Errorf("postgres: set keyring: %w", err)
	}
	return nil
}

func (t *storeTx) InsertKey(ctx context.Context, k vault.WrappedKey) error {
	if k.Owner != t.owner {
		return errors.New("postgres: insert key: owner differs from the transaction's")
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO tenant_keys (owner_id, version, kek_id, wrapped, created_at)
		VALUES ($1, $2, $3, $4, $5)`, t.owner, int32(k.Version), k.KEKID, k.Wrapped, k.Created)
	if err != nil {
		return fmt.Errorf("postgres: insert key: %w", err)
	}
	return nil
}

func (t *storeTx) Keys(ctx context.Context, minVersion uint32) ([]vault.WrappedKey, error) {
	rows, err := t.tx.Query(ctx, `SELECT version, kek_id, wrapped, created_at FROM tenant_keys
		WHERE owner_id = $1 AND version >= $2 ORDER BY version`, t.owner, int32(minVersion))
	if err != nil {
		return nil, fmt.Errorf("postgres: keys: %w", err)
	}
	var (
		out []vault.WrappedKey
		k   vault.WrappedKey
		ver int32
	)
	_, err = pgx.ForEachRow(rows, []any{&ver, &k.KEKID, &k.Wrapped, &k.Created}, func() error {
		k.Owner, k.Version = t.owner, uint32(ver)
		out = append(out, k)
		k = vault.WrappedKey{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: keys: %w", err)
	}
	return out, nil
}

func (t *storeTx) DeleteKeysBelow(ctx context.Context, version uint32) ([]uint32, error) {
	bound := int64(version)
	rows, err := t.tx.Query(ctx, `DELETE FROM tenant_keys WHERE owner_id = $1 AND version < $2::bigint RETURNING version`, t.owner, bound)
	if err != nil {
		return nil, fmt.Errorf("postgres: delete keys: %w", err)
	}
	var (
		out []uint32
		v   int32
	)
	_, err = pgx.ForEachRow(rows, []any{&v}, func() error {
		out = append(out, uint32(v))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: delete keys: %w", err)
	}
	return out, nil
}

func (t *storeTx) Tombstone(ctx context.Context, at time.Time) (vault.KeyringState, error) {
	row := t.tx.QueryRow(ctx, `INSERT INTO keyrings AS k (owner_id, current_version, min_decrypt_version, shredded_at)
		VALUES ($1, 0, 0, $2)
		ON CONFLICT (owner_id) DO UPDATE SET shredded_at = coalesce(k.shredded_at, EXCLUDED.shredded_at), updated_at = now()
		RETURNING current_version, min_decrypt_version, shredded_at, versions_destroyed, secrets_deleted, rows_deleted`, t.owner, at)
	return scanKeyring(row)
}

func (t *storeTx) RecordShred(ctx context.Context, destroyed []uint32, secretsDeleted, rowsDeleted int64) error {
	vs := make([]int32, len(destroyed))
	for i, v := range destroyed {
		vs[i] = int32(v)
	}
	_, err := t.tx.Exec(ctx, `UPDATE keyrings SET
			versions_destroyed = ARRAY(SELECT DISTINCT v FROM unnest(versions_destroyed || $2::integer[]) v ORDER BY v),
			secrets_deleted = secrets_deleted + $3, rows_deleted = rows_deleted + $4, updated_at = now()
		WHERE owner_id = $1 AND shredded_at IS NOT NULL`, t.owner, vs, secretsDeleted, rowsDeleted)
	if err != nil {
		return fmt.Errorf("postgres: record shred: %w", err)
	}
	return nil
}

func (t *storeTx) deleteBatch(ctx context.Context, what, sql string, limit int) (int64, error) {
	tag, err := t.tx.Exec(ctx, sql, t.owner, limit)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete %s: %w", what, err)
	}
	return tag.RowsAffected(), nil
}

func (t *storeTx) DeleteSecretsBatch(ctx context.Context, limit int) (int64, error) {
	return t.deleteBatch(ctx, "secrets", `DELETE FROM secrets WHERE owner_id = $1 AND (app_id, name) IN
		(SELECT app_id, name FROM secrets WHERE owner_id = $1 LIMIT $2)`, limit)
}

func (t *storeTx) DeleteAppsBatch(ctx context.Context, limit int) (int64, error) {
	return t.deleteBatch(ctx, "apps", `DELETE FROM registered_apps WHERE owner_id = $1 AND app_id IN
		(SELECT app_id FROM registered_apps WHERE owner_id = $1 LIMIT $2)`, limit)
}

func (t *storeTx) PurgeAuditBatch(ctx context.Context, limit int) (int64, error) {
	var n int32
	if err := t.tx.QueryRow(ctx, `SELECT audit_purge($1, $2)`, t.owner, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: purge audit: %w", err)
	}
	return int64(n), nil
}

const sqlRecordUse = `INSERT INTO audit_log (owner_id, id, at, workload, action, subject, purpose, items)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM keyrings k
		WHERE k.owner_id = $1 AND k.shredded_at IS NULL
		  AND ($9::integer = 0 OR k.min_decrypt_version <= $9::integer)
		  AND ($10::integer = 0 OR k.current_version = $10::integer)`

// sqlAsyncCommit relaxes the commit of this transaction only (is_local): a pooled connection
// never carries it into another transaction.
const sqlAsyncCommit = `SELECT set_config('synchronous_commit', $1, true)`

func (t *storeTx) RecordUse(ctx context.Context, e vault.AuditEntry, check vault.UseCheck) (bool, error) {
	args := []any{t.owner, e.ID, e.Time, e.Workload, e.Action, e.Subject, string(e.Purpose), int32(e.Items),
		int32(check.OldestVersion), int32(check.Current)}
	if !check.AsyncCommit {
		tag, err := t.tx.Exec(ctx, sqlRecordUse, args...)
		if err != nil {
			return false, fmt.Errorf("postgres: record use: %w", err)
		}
		return tag.RowsAffected() == 1, nil
	}
	// One round trip: the setting and the insert ride in the same batch (with the
	// transaction's opening, when they are its first statements).
	b := &pgx.Batch{}
	b.Queue(sqlAsyncCommit, "off")
	b.Queue(sqlRecordUse, args...)
	br := t.tx.SendBatch(ctx, b)
	_, err := br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("postgres: record use: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *storeTx) Audit(ctx context.Context, e vault.AuditEntry) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO audit_log (owner_id, id, at, workload, action, subject, purpose, items)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.owner, e.ID, e.Time, e.Workload, e.Action, e.Subject, string(e.Purpose), int32(e.Items))
	if err != nil {
		return fmt.Errorf("postgres: audit: %w", err)
	}
	return nil
}

func (t *storeTx) ListAudit(ctx context.Context, before uuid.UUID, limit int) ([]vault.AuditEntry, error) {
	rows, err := t.tx.Query(ctx, `SELECT id, at, workload, action, subject, purpose, items FROM audit_log
		WHERE owner_id = $1 AND ($2::uuid = '00000000-0000-0000-0000-000000000000' OR id < $2)
		ORDER BY id DESC LIMIT $3`, t.owner, before, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	var (
		out     []vault.AuditEntry
		e       vault.AuditEntry
		purpose string
		items   int32
	)
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.Time, &e.Workload, &e.Action, &e.Subject, &purpose, &items}, func() error {
		e.Purpose, e.Items = vault.Purpose(purpose), int(items)
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	return out, nil
}

func (t *storeTx) RegisterApp(ctx context.Context, appID uuid.UUID, at time.Time) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO registered_apps (owner_id, app_id, registered_at) VALUES ($1, $2, $3)
		ON CONFLICT (owner_id, app_id) DO NOTHING`, t.owner, appID, at)
	if err != nil {
		return fmt.Errorf("postgres: register app: %w", err)
	}
	return nil
}

func (t *storeTx) UnregisterApp(ctx context.Context, appID uuid.UUID) (int64, bool, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM secrets WHERE owner_id = $1 AND app_id = $2`, t.owner, appID)
	if err != nil {
		return 0, false, fmt.Errorf("postgres: unregister app: %w", err)
	}
	apps, err := t.tx.Exec(ctx, `DELETE FROM registered_apps WHERE owner_id = $1 AND app_id = $2`, t.owner, appID)
	if err != nil {
		return 0, false, fmt.Errorf("postgres: unregister app: %w", err)
	}
	return tag.RowsAffected(), apps.RowsAffected() == 1, nil
}

func (t *storeTx) AppRegistered(ctx context.Context, appID uuid.UUID) (bool, error) {
	var ok bool
	err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM registered_apps WHERE owner_id = $1 AND app_id = $2)`,
		t.owner, appID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("postgres: app registered: %w", err)
	}
	return ok, nil
}

const secretColumns = `app_id, name, upstream_host, injection_kind, header_name, prefix, query_param,
	created_at, rotated_at, key_version`

func secretDest(s *vault.Secret, kind *int16, ver *int32) []any {
	return []any{&s.AppID, &s.Name, &s.UpstreamHost, kind, &s.Injection.HeaderName, &s.Injection.Prefix,
		&s.Injection.QueryParam, &s.Created, &s.Rotated, ver}
}

func (t *storeTx) InsertSecret(ctx context.Context, s vault.StoredSecret) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO secrets (owner_id, app_id, name, ciphertext, key_version, upstream_host,
			injection_kind, header_name, prefix, query_param, created_at, rotated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		t.owner, s.AppID, s.Name, s.Ciphertext, int32(s.KeyVersion), s.UpstreamHost, int16(s.Injection.Kind),
		s.Injection.HeaderName, s.Injection.Prefix, s.Injection.QueryParam, s.Created, s.Rotated)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		return fault.AlreadyExists("a secret with this name exists; rotate it instead")
	case errors.As(err, &pgErr) && pgErr.Code == "23503":
		// The app was unregistered concurrently: the same answer as an unknown app.
		return fault.NotFound("app not found")
	case err != nil:
		return fmt.Errorf("postgres: insert secret: %w", err)
	}
	return nil
}

func (t *storeTx) CountSecrets(ctx context.Context, appID uuid.UUID) (int, error) {
	var n int
	err := t.tx.QueryRow(ctx, `SELECT count(*) FROM secrets WHERE owner_id = $1 AND app_id = $2`, t.owner, appID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count secrets: %w", err)
	}
	return n, nil
}

func (t *storeTx) Secret(ctx context.Context, appID uuid.UUID, name string, lock bool) (vault.StoredSecret, error) {
	q := `SELECT ` + secretColumns + `, ciphertext FROM secrets WHERE owner_id = $1 AND app_id = $2 AND name = $3`
	if lock {
		q += " FOR UPDATE"
	}
	var (
		s    vault.StoredSecret
		kind int16
		ver  int32
	)
	err := t.tx.QueryRow(ctx, q, t.owner, appID, name).Scan(append(secretDest(&s.Secret, &kind, &ver), &s.Ciphertext)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return vault.StoredSecret{}, vault.ErrNoSecret
	}
	if err != nil {
		return vault.StoredSecret{}, fmt.Errorf("postgres: secret: %w", err)
	}
	s.Injection.Kind, s.KeyVersion = vault.InjectionKind(kind), uint32(ver)
	return s, nil
}

func (t *storeTx) UpdateSecretValue(ctx context.Context, appID uuid.UUID, name string, ct []byte, keyVersion uint32, at time.Time) error {
	_, err := t.tx.Exec(ctx, `UPDATE secrets SET ciphertext = $4, key_version = $5, rotated_at = $6
		WHERE owner_id = $1 AND app_id = $2 AND name = $3`, t.owner, appID, name, ct, int32(keyVersion), at)
	if err != nil {
		return fmt.Errorf("postgres: update secret: %w", err)
	}
	return nil
}

func (t *storeTx) RewrapSecret(ctx context.Context, appID uuid.UUID, name string, ct []byte, keyVersion uint32) error {
	_, err := t.tx.Exec(ctx, `UPDATE secrets SET ciphertext = $4, key_version = $5
		WHERE owner_id = $1 AND app_id = $2 AND name = $3`, t.owner, appID, name, ct, int32(keyVersion))
	if err != nil {
		return fmt.Errorf("postgres: rewrap secret: %w", err)
	}
	return nil
}

func (t *storeTx) DeleteSecret(ctx context.Context, appID uuid.UUID, name string) (bool, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM secrets WHERE owner_id = $1 AND app_id = $2 AND name = $3`, t.owner, appID, name)
	if err != nil {
		return false, fmt.Errorf("postgres: delete secret: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *storeTx) listSecrets(ctx context.Context, where string, args ...any) ([]vault.Secret, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+secretColumns+` FROM secrets WHERE owner_id = $1`+where+` ORDER BY app_id, name`,
		append([]any{t.owner}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list secrets: %w", err)
	}
	var (
		out  []vault.Secret
		s    vault.Secret
		kind int16
		ver  int32
	)
	_, err = pgx.ForEachRow(rows, secretDest(&s, &kind, &ver), func() error {
		s.Injection.Kind, s.KeyVersion = vault.InjectionKind(kind), uint32(ver)
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list secrets: %w", err)
	}
	return out, nil
}

func (t *storeTx) ListSecrets(ctx context.Context, appID uuid.UUID) ([]vault.Secret, bool, error) {
	ok, err := t.AppRegistered(ctx, appID)
	if err != nil || !ok {
		return nil, false, err
	}
	list, err := t.listSecrets(ctx, ` AND app_id = $2`, appID)
	return list, true, err
}

func (t *storeTx) AllSecrets(ctx context.Context) ([]vault.Secret, error) {
	return t.listSecrets(ctx, "")
}

func (t *storeTx) SecretsBelow(ctx context.Context, version uint32, limit int) ([]vault.StoredSecret, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+secretColumns+`, ciphertext FROM secrets
		WHERE owner_id = $1 AND key_version < $2 ORDER BY app_id, name LIMIT $3 FOR UPDATE`, t.owner, int32(version), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: stale secrets: %w", err)
	}
	var (
		out  []vault.StoredSecret
		s    vault.StoredSecret
		kind int16
		ver  int32
	)
	_, err = pgx.ForEachRow(rows, append(secretDest(&s.Secret, &kind, &ver), &s.Ciphertext), func() error {
		s.Injection.Kind, s.KeyVersion = vault.InjectionKind(kind), uint32(ver)
		out = append(out, s)
		s = vault.StoredSecret{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: stale secrets: %w", err)
	}
	return out, nil
}

func (t *storeTx) CountSecretsBelow(ctx context.Context, version uint32) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, `SELECT count(*) FROM secrets WHERE owner_id = $1 AND key_version < $2`,
		t.owner, int32(version)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count stale secrets: %w", err)
	}
	return n, nil
}
