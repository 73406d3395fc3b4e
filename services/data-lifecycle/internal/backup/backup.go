// Package backup is the `data-lifecycle backup` job and its counterparts: every service
// database is dumped (a consistent snapshot, COPY in binary format, as the backup role, which
// has BYPASSRLS and reads everything) into one stream sealed under a backup key from the key
// provider and written to the backup bucket; every backup written, read and deleted is logged
// (and recorded in the bucket's access log); backups older than the retention are deleted,
// and so are deletion-ledger entries no backup can need any more.
//
// The dump is logical and written in Go, not by pg_dump: the service image is a static binary
// on distroless (no pg_dump there), and a dump of rows only is what a restore needs, because
// the schema comes from the service's own migrations at the versions the dump records.
//
// Excluded data: secrets-vault's wrapped tenant keys (tenant_keys) are never dumped. Their
// only backups are the vault's keyring backups, which ShredTenant destroys, so every dump that
// still holds a purged tenant's rows holds ciphertext nobody can open.
//
// Restore (see the service README): migrate a new database with the service's release that
// took the dump, `data-lifecycle restore`, then `data-lifecycle replay-ledger` to purge again
// every tenant purged since the dump was taken.
package backup

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/forgeapps/backbone/pkg/database"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/archive"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/config"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/keyprovider"
)

// Format names the dump layout.
const Format = "forge-dump/1"

// DumpPrefix is where dumps live in the backup bucket: dumps/<service>/<taken>-<rand>.fgdump.
const DumpPrefix = "dumps/"

// AccessLogPrefix is where every backup written, read and deleted is recorded.
const AccessLogPrefix = "access-log/"

// Header opens every dump.
type Header struct {
	Format     string           `json:"format"`
	Service    string           `json:"service"`
	Database   string           `json:"database"`
	Schema     string           `json:"schema"`
	TakenAt    time.Time        `json:"taken_at"`
	Migrations map[string]int64 `json:"migrations"`
	Tables     []Table          `json:"tables"`
}

// Table is one dumped table.
type Table struct {
	Name     string   `json:"name"`
	Columns  []string `json:"columns"`
	Excluded bool     `json:"excluded,omitempty"`
}

// Job runs backups.
type Job struct {
	Bucket    *blob.Bucket
	Keys      keyprovider.Wrapper
	Log       *slog.Logger
	Now       func() time.Time
	Retention time.Duration
}

// sealer adapts the backup key to the archive format's key sealing.
type sealer struct{ keys keyprovider.Wrapper }

func aad(b archive.Binding) []byte {
	return []byte("forge.backup.v1\x00" + b.Object + "\x00" + b.Field)
}

func (s sealer) Seal(ctx context.Context, b archive.Binding, pt []byte) ([]byte, error) {
	return s.keys.Wrap(ctx, pt, aad(b))
}

func (s sealer) Open(ctx context.Context, b archive.Binding, ct []byte) ([]byte, error) {
	return s.keys.Unwrap(ctx, ct, aad(b))
}

// TargetURL is the URL of target's database: base with the database replaced.
func TargetURL(base string, t config.Target) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("backup: database URL: %w", err)
	}
	u.Path = "/" + t.Database
	u.RawPath = ""
	return u.String(), nil
}

// Dump writes one sealed dump of target and returns its object key.
func (j *Job) Dump(ctx context.Context, dbURL string, t config.Target) (string, int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", 0, fmt.Errorf("backup %s: connect: %w", t.Service, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	// One snapshot for every table: the dump is consistent.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return "", 0, fmt.Errorf("backup %s: begin: %w", t.Service, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	now := j.Now().UTC()
	h := Header{Format: Format, Service: t.Service, Database: t.Database, Schema: t.Schema, TakenAt: now}
	if h.Migrations, err = migrationVersions(ctx, tx, t.Schema); err != nil {
		return "", 0, err
	}
	if h.Tables, err = tables(ctx, tx, t); err != nil {
		return "", 0, err
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return "", 0, err
	}
	name := fmt.Sprintf("%s%s/%s-%s.fgdump", DumpPrefix, t.Service, now.Format("20060102T150405Z"), hex.EncodeToString(suffix))
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	bw, err := j.Bucket.NewWriter(wctx, name, nil)
	if err != nil {
		return "", 0, fmt.Errorf("backup %s: %w", t.Service, err)
	}
	enc, err := archive.NewEncryptingWriter(ctx, bw, sealer{j.Keys}, name, 0)
	if err != nil {
		abort()
		_ = bw.Close()
		return "", 0, err
	}
	if err := writeDump(ctx, tx, enc, h); err != nil {
		abort()
		_ = bw.Close()
		return "", 0, fmt.Errorf("backup %s: %w", t.Service, err)
	}
	if err := enc.Close(); err != nil {
		abort()
		_ = bw.Close()
		return "", 0, err
	}
	if err := bw.Close(); err != nil {
		return "", 0, fmt.Errorf("backup %s: write: %w", t.Service, err)
	}
	j.access(ctx, "written", name, enc.Written())
	return name, enc.Written(), nil
}

func writeDump(ctx context.Context, tx pgx.Tx, w io.Writer, h Header) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	hb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := frame(bw, hb); err != nil {
		return err
	}
	for _, t := range h.Tables {
		if t.Excluded {
			continue
		}
		if err := frame(bw, []byte(t.Name)); err != nil {
			return err
		}
		sql := fmt.Sprintf("COPY (SELECT %s FROM %s) TO STDOUT WITH (FORMAT binary)",
			quoteCols(t.Columns), pgx.Identifier{h.Schema, t.Name}.Sanitize())
		if _, err := tx.Conn().PgConn().CopyTo(ctx, framer{bw}, sql); err != nil {
			return fmt.Errorf("copy %s: %w", t.Name, err)
		}
		if err := frame(bw, nil); err != nil { // end of the table's data
			return err
		}
	}
	if err := frame(bw, nil); err != nil { // end of the dump
		return err
	}
	return bw.Flush()
}

func quoteCols(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// frame writes a length-prefixed chunk (a zero length ends a sequence).
func frame(w io.Writer, b []byte) error {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b)))
	if _, err := w.Write(l[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// framer frames every write of COPY data.
type framer struct{ w io.Writer }

func (f framer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := frame(f.w, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func readFrame(r io.Reader, max int) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(l[:]))
	if n > max {
		return nil, errors.New("backup: frame too large")
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func migrationVersions(ctx context.Context, tx pgx.Tx, schema string) (map[string]int64, error) {
	out := map[string]int64{}
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1`, database.MigrationsSchema(schema))
	if err != nil {
		return nil, fmt.Errorf("migration versions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("migration versions: %w", err)
	}
	for _, n := range names {
		var v int64
		q := fmt.Sprintf("SELECT coalesce(max(version_id), 0) FROM %s WHERE is_applied", pgx.Identifier{database.MigrationsSchema(schema), n}.Sanitize())
		if err := tx.QueryRow(ctx, q).Scan(&v); err != nil {
			return nil, fmt.Errorf("migration versions %s: %w", n, err)
		}
		out[n] = v
	}
	return out, nil
}

func tables(ctx context.Context, tx pgx.Tx, t config.Target) ([]Table, error) {
	rows, err := tx.Query(ctx, `
		SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
		GROUP BY c.relname ORDER BY c.relname`, t.Schema)
	if err != nil {
		return nil, fmt.Errorf("tables: %w", err)
	}
	var out []Table
	for rows.Next() {
		var tb Table
		if err := rows.Scan(&tb.Name, &tb.Columns); err != nil {
			rows.Close()
			return nil, err
		}
		tb.Excluded = slices.Contains(t.ExcludeData, tb.Name)
		out = append(out, tb)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if out, err = fkOrder(ctx, tx, t.Schema, out); err != nil {
		return nil, err
	}
	for _, ex := range t.ExcludeData {
		if !slices.ContainsFunc(out, func(tb Table) bool { return tb.Name == ex }) {
			// A renamed key table would silently be dumped: refuse instead.
			return nil, fmt.Errorf("backup %s: excluded table %q does not exist", t.Service, ex)
		}
	}
	return out, nil
}

// access logs one backup access and records it in the bucket's access log.
func (j *Job) access(ctx context.Context, op, name string, size int64) {
	j.Log.InfoContext(ctx, "backup "+op, slog.String("backup", name), slog.Int64("size_bytes", size))
	rec, _ := json.Marshal(map[string]any{"op": op, "backup": name, "size_bytes": size, "time": j.Now().UTC()})
	key := fmt.Sprintf("%s%s-%s-%s.json", AccessLogPrefix, j.Now().UTC().Format("20060102T150405.000000000Z"), op,
		strings.NewReplacer("/", "_").Replace(name))
	if err := j.Bucket.WriteAll(ctx, key, rec, nil); err != nil {
		j.Log.WarnContext(ctx, "backup access log not recorded", slog.String("backup", name), slog.Any("error", err))
	}
}

// Backup dumps every target, then prunes.
func (j *Job) Backup(ctx context.Context, dbURL string, targets []config.Target) error {
	var errs []error
	for _, t := range targets {
		u, err := TargetURL(dbURL, t)
		if err != nil {
			return err
		}
		if _, _, err := j.Dump(ctx, u, t); err != nil {
			j.Log.ErrorContext(ctx, "backup failed", slog.String("service", t.Service), slog.Any("error", err))
			errs = append(errs, err)
		}
	}
	if err := j.Prune(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TakenAt reads the time a dump was taken from its name.
func TakenAt(name string) (time.Time, bool) {
	base := name[strings.LastIndex(name, "/")+1:]
	ts, _, ok := strings.Cut(base, "-")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T150405Z", ts)
	return t, err == nil
}

// Prune deletes dumps older than the retention and ledger entries whose last backup expired.
func (j *Job) Prune(ctx context.Context) error {
	now := j.Now()
	it := j.Bucket.List(&blob.ListOptions{Prefix: DumpPrefix})
	var old []string
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		if t, ok := TakenAt(obj.Key); ok && now.Sub(t) > j.Retention {
			old = append(old, obj.Key)
		}
	}
	sort.Strings(old)
	for _, k := range old {
		if err := j.Bucket.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("prune %s: %w", k, err)
		}
		j.access(ctx, "deleted", k, 0)
	}
	return j.pruneLedger(ctx, now)
}

// fkOrder sorts tables so that every table comes after the tables its foreign keys reference
// (ties by name), so a restore loads parents first.
func fkOrder(ctx context.Context, tx pgx.Tx, schema string, ts []Table) ([]Table, error) {
	rows, err := tx.Query(ctx, `SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
		JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = $1 AND c.contype = 'f' AND c.conrelid <> c.confrelid`, schema)
	if err != nil {
		return nil, fmt.Errorf("foreign keys: %w", err)
	}
	deps := map[string][]string{}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			rows.Close()
			return nil, err
		}
		deps[unqualify(child)] = append(deps[unqualify(child)], unqualify(parent))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	byName := map[string]Table{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	var out []Table
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("foreign keys form a cycle through %s", n)
		case 2:
			return nil
		}
		state[n] = 1
		parents := deps[n]
		sort.Strings(parents)
		for _, p := range parents {
			if _, ok := byName[p]; ok {
				if err := visit(p); err != nil {
					return err
				}
			}
		}
		state[n] = 2
		out = append(out, byName[n])
		return nil
	}
	for _, t := range ts {
		if err := visit(t.Name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func unqualify(s string) string {
	if i := strings.LastIndex(s, "."); i >= 0 {
		s = s[i+1:]
	}
	return strings.Trim(s, `"`)
}
