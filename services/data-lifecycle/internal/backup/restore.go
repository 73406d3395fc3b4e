package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"
	"gocloud.dev/blob"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/archive"
)

// LedgerEntry mirrors the workflow's ledger record (the backup job prunes and reads it).
type LedgerEntry struct {
	OwnerID         string    `json:"owner_id"`
	HomeRegion      string    `json:"home_region"`
	DeletionID      string    `json:"deletion_id"`
	CompleteTime    time.Time `json:"complete_time"`
	BackupsExpireBy time.Time `json:"backups_expire_by"`
}

// LedgerPrefix is where the ledger lives (the workflow writes it).
const LedgerPrefix = "ledger/"

// ReadLedger lists ledger entries completed at or after since.
func ReadLedger(ctx context.Context, b *blob.Bucket, since time.Time) ([]LedgerEntry, error) {
	var out []LedgerEntry
	it := b.List(&blob.ListOptions{Prefix: LedgerPrefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		raw, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			return nil, fmt.Errorf("ledger %s: %w", obj.Key, err)
		}
		var e LedgerEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("ledger %s: %w", obj.Key, err)
		}
		if !e.CompleteTime.Before(since) {
			out = append(out, e)
		}
	}
}

// pruneLedger deletes ledger entries once no backup older than their purge can exist.
func (j *Job) pruneLedger(ctx context.Context, now time.Time) error {
	entries, err := ReadLedger(ctx, j.Bucket, time.Time{})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if now.After(e.BackupsExpireBy) {
			if err := j.Bucket.Delete(ctx, LedgerPrefix+e.DeletionID+".json"); err != nil {
				return fmt.Errorf("prune ledger: %w", err)
			}
		}
	}
	return nil
}

// Open reads and decrypts a dump and returns its header and a reader positioned at the data.
func (j *Job) Open(ctx context.Context, name string) (Header, io.Reader, func() error, error) {
	r, err := j.Bucket.NewReader(ctx, name, nil)
	if err != nil {
		return Header{}, nil, nil, fmt.Errorf("restore: %w", err)
	}
	dr, err := archive.NewDecryptingReader(ctx, r, sealer{j.Keys}, name)
	if err != nil {
		_ = r.Close()
		return Header{}, nil, nil, err
	}
	br := bufio.NewReaderSize(dr, 256<<10)
	hb, err := readFrame(br, 16<<20)
	if err != nil {
		_ = r.Close()
		return Header{}, nil, nil, fmt.Errorf("restore: header: %w", err)
	}
	var h Header
	if err := json.Unmarshal(hb, &h); err != nil || h.Format != Format {
		_ = r.Close()
		return Header{}, nil, nil, errors.New("restore: not a forge dump")
	}
	j.access(ctx, "read", name, 0)
	return h, br, r.Close, nil
}

// Restore loads a dump into the database at dbURL (the migration role of a database migrated
// by the service's release at the dump's migration versions). Every table must be empty; the
// whole restore is one transaction. Tables come in foreign-key order (Dump sorts them), so
// every constraint and trigger is checked as the rows load.
func (j *Job) Restore(ctx context.Context, name, dbURL string) (Header, error) {
	h, r, closeFn, err := j.Open(ctx, name)
	if err != nil {
		return Header{}, err
	}
	defer func() { _ = closeFn() }()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return h, fmt.Errorf("restore: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return h, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		got, err := migrationVersions(ctx, tx, h.Schema)
		if err != nil {
			return err
		}
		if !maps.Equal(got, h.Migrations) {
			return fmt.Errorf("restore: the target's migrations %v differ from the dump's %v: migrate it with the release that took the dump", got, h.Migrations)
		}
		cols := map[string][]string{}
		for _, t := range h.Tables {
			cols[t.Name] = t.Columns
			var n int64
			if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s", pgx.Identifier{h.Schema, t.Name}.Sanitize())).Scan(&n); err != nil {
				return fmt.Errorf("restore: %s: %w", t.Name, err)
			}
			if n != 0 {
				return fmt.Errorf("restore: table %s is not empty", t.Name)
			}
		}
		for {
			nameB, err := readFrame(r, 1024)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if len(nameB) == 0 {
				break
			}
			table := string(nameB)
			c, ok := cols[table]
			if !ok {
				return fmt.Errorf("restore: unknown table %q", table)
			}
			sql := fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (FORMAT binary)", pgx.Identifier{h.Schema, table}.Sanitize(), quoteCols(c))
			if _, err := tx.Conn().PgConn().CopyFrom(ctx, &unframer{r: r}, sql); err != nil {
				return fmt.Errorf("restore %s: %w", table, err)
			}
		}
		return nil
	})
}

// unframer reads framed COPY data until the zero frame.
type unframer struct {
	r    io.Reader
	cur  []byte
	done bool
}

func (u *unframer) Read(p []byte) (int, error) {
	for len(u.cur) == 0 {
		if u.done {
			return 0, io.EOF
		}
		b, err := readFrame(u.r, 64<<20)
		if err != nil {
			return 0, err
		}
		if len(b) == 0 {
			u.done = true
			return 0, io.EOF
		}
		u.cur = b
	}
	n := copy(p, u.cur)
	u.cur = u.cur[n:]
	return n, nil
}
