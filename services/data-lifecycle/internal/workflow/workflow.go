// Package workflow drives data-lifecycle's long-running work across services: the export job
// (gather from tenant, apps and secrets-vault, write the sealed zip), the deletion (disable at
// once downstream, retried until applied; cancel and restore), the scheduler that claims due
// purges, the purge's own store and the certificate once every store of the registry has
// reported. Postgres is the source of truth: every step reads and writes it first, so a
// process killed at any point resumes from there.
package workflow

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"gocloud.dev/blob"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/archive"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
)

// Config is what the workflows need.
type Config struct {
	Store   *postgres.Store
	Tenant  tenantv1.TenantAdminServiceClient
	Apps    appsv1.AppsInternalServiceClient
	Keys    vaultv1.KeyServiceClient
	Crypto  vaultv1.CryptoServiceClient
	Objects *blob.Bucket
	// Ledger keeps the deletion ledger apart from the databases (the backup bucket), so a
	// restore of every database still knows whom to purge again.
	Ledger *blob.Bucket
	Signer *lifecycle.Signer
	Clock  lifecycle.Clock
	Logger *slog.Logger
	Meter  metric.MeterProvider
	// BackupRetention bounds how long a database backup may still hold a purged tenant's rows.
	BackupRetention time.Duration
	// PurgeRetryAfter is how long a purge may go without every store reporting before it is
	// fanned out again.
	PurgeRetryAfter time.Duration
	// CallTimeout bounds one downstream call made while a deletion row is locked.
	CallTimeout time.Duration
	// SegmentSize is the archive's segment size (0: 1 MiB).
	SegmentSize int
	// Interrupt, when set, is called after each durable step of a purge and stops the purge
	// there when it returns an error: tests use it to stop the worker at every step and prove
	// it resumes. Nil in the service.
	Interrupt func(step string) error
}

// Workflows is the service's engine.
type Workflows struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
}

// New checks cfg and builds the workflows.
func New(cfg Config) (*Workflows, error) {
	switch {
	case cfg.Store == nil, cfg.Tenant == nil, cfg.Apps == nil, cfg.Keys == nil, cfg.Crypto == nil,
		cfg.Objects == nil, cfg.Ledger == nil, cfg.Signer == nil, cfg.Clock == nil:
		return nil, errors.New("workflow: incomplete configuration")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BackupRetention <= 0 {
		cfg.BackupRetention = lifecycle.DefaultBackupRetention
	}
	if cfg.PurgeRetryAfter <= 0 {
		cfg.PurgeRetryAfter = 10 * time.Minute
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	m, err := newMetrics(cfg.Meter, cfg.Store, cfg.Clock, cfg.PurgeRetryAfter)
	if err != nil {
		return nil, err
	}
	return &Workflows{cfg: cfg, log: cfg.Logger, metrics: m}, nil
}

func (w *Workflows) step(name string) error {
	if w.cfg.Interrupt == nil {
		return nil
	}
	return w.cfg.Interrupt(name)
}

// The durable steps of data-lifecycle's part of a purge, in order.
const (
	StepArchivesDeleted  = "archives-deleted"
	StepArchivesReported = "archives-reported"
	StepRowsBatch        = "rows-batch"
	StepRowsReported     = "rows-reported"
	StepLedgerWritten    = "ledger-written"
)

// Clock is the workflows' clock.
func (w *Workflows) Clock() lifecycle.Clock { return w.cfg.Clock }

// Store is the workflows' store.
func (w *Workflows) Store() *postgres.Store { return w.cfg.Store }

// PublicKey is the certificate verification key.
func (w *Workflows) PublicKey() ed25519.PublicKey { return w.cfg.Signer.PublicKey() }

// system strips the owner from ctx: the system methods of other services refuse a caller
// asserting one, and name the tenant in the request instead.
func system(ctx context.Context) context.Context { return owner.NewContext(ctx, owner.Owner{}) }

// vaultSealer seals and opens archive keys with secrets-vault, purpose EXPORT, as the owner.
type vaultSealer struct {
	crypto vaultv1.CryptoServiceClient
	owner  owner.Owner
}

func (v vaultSealer) Seal(ctx context.Context, b archive.Binding, plaintext []byte) ([]byte, error) {
	resp, err := v.crypto.Encrypt(owner.NewContext(ctx, v.owner), &vaultv1.EncryptRequest{
		Purpose: vaultv1.Purpose_PURPOSE_EXPORT,
		Items:   []*vaultv1.EncryptItem{{Binding: &vaultv1.Binding{Object: b.Object, Field: b.Field}, Plaintext: plaintext}},
	})
	if err != nil {
		return nil, fmt.Errorf("vault encrypt: %w", err)
	}
	if len(resp.GetCiphertexts()) != 1 {
		return nil, errors.New("vault encrypt: want one ciphertext")
	}
	return resp.GetCiphertexts()[0], nil
}

func (v vaultSealer) Open(ctx context.Context, b archive.Binding, ciphertext []byte) ([]byte, error) {
	resp, err := v.crypto.Decrypt(owner.NewContext(ctx, v.owner), &vaultv1.DecryptRequest{
		Purpose: vaultv1.Purpose_PURPOSE_EXPORT,
		Items:   []*vaultv1.DecryptItem{{Binding: &vaultv1.Binding{Object: b.Object, Field: b.Field}, Ciphertext: ciphertext}},
	})
	if err != nil {
		return nil, fmt.Errorf("vault decrypt: %w", err)
	}
	if len(resp.GetPlaintexts()) != 1 {
		return nil, errors.New("vault decrypt: want one plaintext")
	}
	return resp.GetPlaintexts()[0], nil
}

// archiveKey is where an export attempt's sealed archive lives.
func archiveKey(o owner.ID, id uuid.UUID, attempt int) string {
	return fmt.Sprintf("%s%s/a%d.fgex", archivePrefix(o), id, attempt)
}

// archivePrefix holds every archive of an owner (the purge deletes it whole).
func archivePrefix(o owner.ID) string { return "exports/" + o.String() + "/" }
