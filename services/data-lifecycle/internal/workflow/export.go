package workflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/archive"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
)

// errSuperseded stops an attempt whose export was cancelled or taken over by a newer attempt.
var errSuperseded = errors.New("export attempt superseded")

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// RunExport runs (or resumes) one export: it is what the ExportRequested consumer calls, and
// it is idempotent: an export that is ready, cancelled, failed or expired is left alone, and a
// retried attempt writes a new object under its own attempt number.
func (w *Workflows) RunExport(ctx context.Context, o owner.Owner, id uuid.UUID) error {
	attempt, ok, err := w.cfg.Store.StartExportAttempt(ctx, o.ID, id, w.cfg.Clock.Now())
	if err != nil || !ok {
		return err
	}
	key := archiveKey(o.ID, id, attempt)
	size, err := w.writeArchive(ctx, o, id, attempt, key)
	if err != nil {
		w.metrics.exports.Add(ctx, 1, metric.WithAttributes(attrOutcome("failed")))
		if errors.Is(err, errSuperseded) {
			w.deleteObject(ctx, w.cfg.Objects, key)
			return nil
		}
		return err
	}
	done, err := w.cfg.Store.FinishExport(ctx, o.ID, id, attempt, key, size, w.cfg.Clock.Now())
	if err != nil {
		return err
	}
	if !done {
		// Cancelled (or taken over) while the archive was written: it must not stay.
		w.deleteObject(ctx, w.cfg.Objects, key)
		return nil
	}
	w.metrics.exports.Add(ctx, 1, metric.WithAttributes(attrOutcome("ready")))
	w.log.InfoContext(ctx, "export ready", slog.String("export_id", id.String()), slog.Int64("size_bytes", size))
	return nil
}

func (w *Workflows) deleteObject(ctx context.Context, b *blob.Bucket, key string) {
	if err := b.Delete(context.WithoutCancel(ctx), key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		w.log.WarnContext(ctx, "object delete failed", slog.String("key", key), slog.Any("error", err))
	}
}

// exportWriter is one attempt's pipeline: zip -> sealing writer -> object writer.
type exportWriter struct {
	w       *Workflows
	o       owner.Owner
	id      uuid.UUID
	attempt int
	zip     *archive.Builder
	items   int64
	percent int
}

func (w *Workflows) writeArchive(ctx context.Context, o owner.Owner, id uuid.UUID, attempt int, key string) (int64, error) {
	e, err := w.cfg.Store.GetExport(ctx, o.ID, id)
	if err != nil {
		return 0, err
	}
	// Cancelling wctx before Close aborts the object write: nothing half-written is left.
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	bw, err := w.cfg.Objects.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return 0, fmt.Errorf("export: open object: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			abort()
			_ = bw.Close() // aborted: the error only says so
		}
	}()
	enc, err := archive.NewEncryptingWriter(ctx, bw, vaultSealer{crypto: w.cfg.Crypto, owner: o}, id.String(), w.cfg.SegmentSize)
	if err != nil {
		return 0, err
	}
	ew := &exportWriter{w: w, o: o, id: id, attempt: attempt,
		zip: archive.NewBuilder(enc, id.String(), o.ID.String(), e.Created)}
	for _, step := range []struct {
		run     func(context.Context) error
		percent int
	}{
		{ew.tenant, 15}, {ew.apps, 85}, {ew.secrets, 95},
	} {
		if err := step.run(ctx); err != nil {
			return 0, err
		}
		if err := ew.progress(ctx, step.percent); err != nil {
			return 0, err
		}
	}
	if _, err := ew.zip.Close(); err != nil {
		return 0, err
	}
	if err := enc.Close(); err != nil {
		return 0, err
	}
	closed = true
	if err := bw.Close(); err != nil {
		return 0, fmt.Errorf("export: write object: %w", err)
	}
	return enc.Written(), nil
}

func (ew *exportWriter) progress(ctx context.Context, percent int) error {
	if percent <= ew.percent {
		return nil
	}
	ok, err := ew.w.cfg.Store.SetExportProgress(ctx, ew.o.ID, ew.id, ew.attempt, percent, ew.w.cfg.Clock.Now())
	if err != nil {
		return err
	}
	if !ok {
		return errSuperseded
	}
	ew.percent = percent
	return nil
}

// tick counts an item and, every 200, moves the progress towards (never reaching) limit.
func (ew *exportWriter) tick(ctx context.Context, from, limit int) error {
	ew.items++
	if ew.items%200 != 0 {
		return nil
	}
	p := from + int(float64(limit-from)*(1-1/(1+float64(ew.items)/2000)))
	return ew.progress(ctx, min(p, limit-1))
}

func (ew *exportWriter) addJSON(name string, m proto.Message) error {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		return fmt.Errorf("export: %s: %w", name, err)
	}
	return ew.zip.AddBytes(name, b)
}

func (ew *exportWriter) tenant(ctx context.Context) error {
	stream, err := ew.w.cfg.Tenant.ExportTenant(system(ctx), &tenantv1.ExportTenantRequest{OwnerId: ew.o.ID.String()})
	if err != nil {
		return fmt.Errorf("export: tenant: %w", err)
	}
	var credits *archive.FileWriter
	for {
		item, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("export: tenant: %w", err)
		}
		switch it := item.GetItem().(type) {
		case *tenantv1.ExportTenantResponse_Account:
			if err := ew.addJSON("account/account.json", it.Account); err != nil {
				return err
			}
			ew.zip.Count("accounts", 1)
		case *tenantv1.ExportTenantResponse_CreditEntry:
			if credits == nil {
				if credits, err = ew.zip.Create("account/credit_entries.jsonl"); err != nil {
					return err
				}
			}
			b, err := jsonOpts.Marshal(it.CreditEntry)
			if err != nil {
				return err
			}
			if _, err := credits.Write(append(b, '\n')); err != nil {
				return err
			}
			ew.zip.Count("credit_entries", 1)
		}
		if err := ew.tick(ctx, 5, 15); err != nil {
			return err
		}
	}
	if credits != nil {
		return credits.Close()
	}
	return nil
}

func (ew *exportWriter) apps(ctx context.Context) error {
	stream, err := ew.w.cfg.Apps.ExportOwner(system(ctx), &appsv1.ExportOwnerRequest{OwnerId: ew.o.ID.String()})
	if err != nil {
		return fmt.Errorf("export: apps: %w", err)
	}
	for {
		item, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("export: apps: %w", err)
		}
		switch it := item.GetItem().(type) {
		case *appsv1.ExportOwnerResponse_App:
			if err := ew.addJSON("apps/"+safe(it.App.GetAppId())+"/app.json", it.App); err != nil {
				return err
			}
			ew.zip.Count("apps", 1)
		case *appsv1.ExportOwnerResponse_Prompt:
			p := it.Prompt.GetPrompt()
			name := fmt.Sprintf("apps/%s/prompts/%06d-%s.json", safe(it.Prompt.GetAppId()), p.GetSeq(), safe(p.GetPromptId()))
			if err := ew.addJSON(name, p); err != nil {
				return err
			}
			ew.zip.Count("prompts", 1)
		case *appsv1.ExportOwnerResponse_Reference:
			r := it.Reference
			dir := "apps/" + safe(r.GetAppId()) + "/references/" + safe(r.GetReference().GetReferenceId())
			if err := ew.addJSON(dir+"/reference.json", r.GetReference()); err != nil {
				return err
			}
			if err := ew.zip.AddBytes(dir+"/"+safe(r.GetReference().GetFilename()), r.GetContent()); err != nil {
				return err
			}
			ew.zip.Count("references", 1)
		case *appsv1.ExportOwnerResponse_File:
			f := it.File
			name := "apps/" + safe(f.GetAppId()) + "/versions/" + strconv.Itoa(int(f.GetVersion())) + "/files/" + f.GetFile().GetPath()
			if _, err := archive.CleanPath(name); err != nil {
				// A path apps accepted but that could escape the archive: keep it, renamed.
				name = "apps/" + safe(f.GetAppId()) + "/versions/" + strconv.Itoa(int(f.GetVersion())) + "/files/" + safe(f.GetFile().GetPath())
			}
			if err := ew.zip.AddBytes(name, f.GetFile().GetContent()); err != nil {
				return err
			}
			ew.zip.Count("files", 1)
		}
		if err := ew.tick(ctx, 15, 85); err != nil {
			return err
		}
	}
}

func (ew *exportWriter) secrets(ctx context.Context) error {
	stream, err := ew.w.cfg.Keys.ExportSecretMetadata(system(ctx), &vaultv1.ExportSecretMetadataRequest{OwnerId: ew.o.ID.String()})
	if err != nil {
		return fmt.Errorf("export: secrets: %w", err)
	}
	var out *archive.FileWriter
	for {
		item, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("export: secrets: %w", err)
		}
		if out == nil {
			if out, err = ew.zip.Create("secrets/secrets.jsonl"); err != nil {
				return err
			}
		}
		// Names and metadata only: the vault's export never carries a value.
		b, err := jsonOpts.Marshal(item.GetSecret())
		if err != nil {
			return err
		}
		if _, err := out.Write(append(b, '\n')); err != nil {
			return err
		}
		ew.zip.Count("secrets", 1)
	}
	if out != nil {
		return out.Close()
	}
	return nil
}

// safe makes one path element out of an identifier or file name.
func safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	out := string(b)
	if out == "" || out == "." || out == ".." {
		return "_" + out
	}
	if len(out) > 200 {
		out = out[:200]
	}
	return out
}

// OpenArchive streams a ready export's archive, decrypted on the fly.
func (w *Workflows) OpenArchive(ctx context.Context, o owner.Owner, e postgres.Export) (io.ReadCloser, error) {
	r, err := w.cfg.Objects.NewReader(ctx, e.ObjectKey, nil)
	if err != nil {
		return nil, fmt.Errorf("export: open archive: %w", err)
	}
	dr, err := archive.NewDecryptingReader(ctx, r, vaultSealer{crypto: w.cfg.Crypto, owner: o}, e.ID.String())
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{dr, r}, nil
}

// FailExport marks an export failed once its deliveries are exhausted.
func (w *Workflows) FailExport(ctx context.Context, o owner.ID, id uuid.UUID) error {
	return w.cfg.Store.FailExport(ctx, o, id, w.cfg.Clock.Now())
}

// ExpireExports deletes the archives past their expiry, then marks them expired.
func (w *Workflows) ExpireExports(ctx context.Context) error {
	now := w.cfg.Clock.Now()
	due, err := w.cfg.Store.ExpiredExports(ctx, now, 100)
	if err != nil {
		return err
	}
	for _, e := range due {
		ex, err := w.cfg.Store.GetExport(ctx, e.Owner, e.ID)
		if err != nil {
			return err
		}
		if err := w.cfg.Objects.Delete(ctx, ex.ObjectKey); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("expire export: %w", err)
		}
		if _, err := w.cfg.Store.ExpireExport(ctx, e.Owner, e.ID, now); err != nil {
			return err
		}
		w.log.InfoContext(ctx, "export expired", slog.String("export_id", e.ID.String()))
	}
	return nil
}
