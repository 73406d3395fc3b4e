package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
)

// purgeBatch bounds the rows one transaction of the own-store purge deletes.
const purgeBatch = 500

// PurgeOwnStores purges what data-lifecycle itself holds of the owner (export rows and links,
// inbox, every archive) in bounded batches and records both of its stores' reports. It is
// idempotent: run again, it finds nothing and the first reports stand.
func (w *Workflows) PurgeOwnStores(ctx context.Context, o owner.ID, deletionID uuid.UUID) error {
	d, err := w.cfg.Store.GetDeletion(ctx, o, deletionID)
	if fault.Is(err, fault.KindNotFound) {
		return nil // not a deletion of this database (a restore predating it): nothing to do
	}
	if err != nil {
		return err
	}
	if d.State != lifecycle.DeletionPurging {
		return nil // completed already (a duplicate event), or not ours to purge
	}
	objects, err := w.deletePrefix(ctx, w.cfg.Objects, archivePrefix(o))
	if err != nil {
		return err
	}
	if err := w.step(StepArchivesDeleted); err != nil {
		return err
	}
	if err := w.Report(ctx, o, deletionID, lifecycle.StoreReport{Store: lifecycle.StoreLifecycleArchives, ObjectsDeleted: objects}); err != nil {
		return err
	}
	if err := w.step(StepArchivesReported); err != nil {
		return err
	}
	var rows int64
	for {
		n, err := w.cfg.Store.PurgeOwnBatch(ctx, o, purgeBatch)
		if err != nil {
			return err
		}
		rows += n
		if n == 0 {
			break
		}
		if err := w.step(StepRowsBatch); err != nil {
			return err
		}
	}
	if err := w.Report(ctx, o, deletionID, lifecycle.StoreReport{Store: lifecycle.StoreLifecycle, RowsDeleted: rows}); err != nil {
		return err
	}
	return w.step(StepRowsReported)
}

// deletePrefix deletes every object under prefix and counts them.
func (w *Workflows) deletePrefix(ctx context.Context, b *blob.Bucket, prefix string) (int64, error) {
	var n int64
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, fmt.Errorf("purge: list objects: %w", err)
		}
		if obj.IsDir {
			continue
		}
		if err := b.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return n, fmt.Errorf("purge: delete object: %w", err)
		}
		n++
	}
}

// Report records one store's completion of a purge; when it is the last store the registry
// waits for, the certificate is signed, the ledger entry written and the purge completed.
func (w *Workflows) Report(ctx context.Context, o owner.ID, deletionID uuid.UUID, r lifecycle.StoreReport) error {
	d, ok, err := w.cfg.Store.RecordStoreReport(ctx, o, deletionID, r, w.cfg.Clock.Now())
	if err != nil || !ok {
		return err
	}
	if len(d.StoresPending) > 0 {
		return nil
	}
	return w.complete(ctx, d)
}

// LedgerEntry is the deletion ledger's record of one completed purge, kept in the backup
// bucket apart from every database. It holds the owner ID itself, because replaying a purge
// after a restore needs to know what to delete; it is deleted once no backup older than the
// purge can exist any more (BackupsExpireBy).
type LedgerEntry struct {
	OwnerID         string    `json:"owner_id"`
	HomeRegion      string    `json:"home_region"`
	DeletionID      string    `json:"deletion_id"`
	CompleteTime    time.Time `json:"complete_time"`
	BackupsExpireBy time.Time `json:"backups_expire_by"`
}

// LedgerPrefix is where ledger entries live in the backup bucket.
const LedgerPrefix = "ledger/"

func (w *Workflows) complete(ctx context.Context, d postgres.Deletion) error {
	now := w.cfg.Clock.Now()
	var versions []uint32
	for _, r := range d.Reports {
		versions = append(versions, r.KeyVersionsDestroyed...)
	}
	slices.Sort(versions)
	versions = slices.Compact(versions)
	p := lifecycle.CertificatePayload{
		DeletionID: d.ID.String(), OwnerIDSHA256: lifecycle.OwnerHash(d.Owner), Region: d.Region.String(),
		RequestTime: d.Requested, PurgeDueTime: d.Due, CompleteTime: now,
		Stores: d.Reports, KeyVersionsDestroyed: versions,
		BackupsExpireBy: now.Add(w.cfg.BackupRetention),
	}
	cert, err := w.cfg.Signer.Sign(p)
	if err != nil {
		return err
	}
	entry, err := json.Marshal(LedgerEntry{OwnerID: d.Owner.String(), HomeRegion: d.Region.String(), DeletionID: d.ID.String(),
		CompleteTime: now, BackupsExpireBy: p.BackupsExpireBy})
	if err != nil {
		return err
	}
	// The ledger entry first: a crash before the completion rewrites the same key.
	if err := w.cfg.Ledger.WriteAll(ctx, LedgerPrefix+d.ID.String()+".json", entry, nil); err != nil {
		return fmt.Errorf("purge: ledger: %w", err)
	}
	if err := w.step(StepLedgerWritten); err != nil {
		return err
	}
	ok, err := w.cfg.Store.CompletePurge(ctx, d.Owner, d.ID, cert, now)
	if err != nil || !ok {
		return err
	}
	w.metrics.purgesComplete.Add(ctx, 1)
	w.log.InfoContext(ctx, "purge completed; certificate issued", slog.String("deletion_id", d.ID.String()))
	return nil
}
