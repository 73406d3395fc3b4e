package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
)

// AuditLog writes proxy audit records in the background: a proxied call's connection would
// otherwise wait for the audit row's commit (several milliseconds) before it can carry the
// browser's next request. The queue is bounded and Record blocks when it is full, so under
// load the proxy slows down rather than dropping audit rows; on shutdown the queue is drained.
type AuditLog struct {
	store  *Store
	ch     chan proxy.Record
	logger *slog.Logger
}

// NewAuditLog returns an audit log holding at most size pending records.
func NewAuditLog(store *Store, size int, logger *slog.Logger) *AuditLog {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &AuditLog{store: store, ch: make(chan proxy.Record, size), logger: logger}
}

// Record queues r, waiting for room while ctx lasts; a record that cannot be queued is logged
// (without any value: a record holds none).
func (a *AuditLog) Record(ctx context.Context, r proxy.Record) {
	select {
	case a.ch <- r:
	case <-ctx.Done():
		a.logger.ErrorContext(ctx, "proxy call not audited: queue full at shutdown", "app_id", r.App, "secret_name", r.SecretName,
			"outcome", r.Outcome)
	}
}

// Run writes queued records until ctx ends, then drains the queue (for up to 10s). Records
// waiting together are written in one transaction per owner, so the log keeps up with many
// calls per commit.
func (a *AuditLog) Run(ctx context.Context) error {
	for {
		select {
		case r := <-a.ch:
			a.write(ctx, a.batch(r))
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			for {
				select {
				case r := <-a.ch:
					a.write(dctx, a.batch(r))
				default:
					return nil
				}
			}
		}
	}
}

// maxBatch bounds the records written together.
const maxBatch = 256

// batch takes first and whatever else is already queued, grouped by owner.
func (a *AuditLog) batch(first proxy.Record) map[owner.ID][]proxy.Record {
	out := map[owner.ID][]proxy.Record{first.Owner: {first}}
	for n := 1; n < maxBatch; n++ {
		select {
		case r := <-a.ch:
			out[r.Owner] = append(out[r.Owner], r)
		default:
			return out
		}
	}
	return out
}

func (a *AuditLog) write(ctx context.Context, batch map[owner.ID][]proxy.Record) {
	for o, recs := range batch {
		for attempt := 1; ; attempt++ {
			err := a.store.AuditCalls(context.WithoutCancel(ctx), o, recs)
			if err == nil {
				break
			}
			if attempt == 3 || ctx.Err() != nil {
				a.logger.ErrorContext(ctx, "proxy calls not audited", "owner_id", o, "records", len(recs), "error", err)
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
	}
}
