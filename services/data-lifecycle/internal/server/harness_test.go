package server_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/events"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/workload"

	lcevents "github.com/forgeapps/backbone/services/data-lifecycle/internal/events"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/grpcapi"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"

	"crypto/ed25519"
	"crypto/rand"
)

// harness runs data-lifecycle in-process against a real Postgres database, a real JetStream
// server and a real mTLS gRPC server, with a clock the test moves. tenant, apps and
// secrets-vault are not running here: their addresses refuse connections, so every downstream
// call fails the way an outage does (the stacktest suite runs them for real).
type harness struct {
	t       testing.TB
	pg      *pgtest.Env
	nats    *natstest.Server
	clock   *lifecycle.ManualClock
	w       *workflow.Workflows
	store   *postgres.Store
	outbox  *events.Outbox
	objects *blob.Bucket
	ledger  *blob.Bucket
	pub     ed25519.PublicKey
	export  lifecyclev1.ExportServiceClient
	delete  lifecyclev1.DeletionServiceClient
	ctx     context.Context
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type harnessOpts struct {
	noConsumers bool
	interrupt   func(step string) error
}

func newHarness(t *testing.T, opts harnessOpts) *harness { return newHarnessOpts(t, opts) }

func newHarnessTB(b *testing.B) *harness { return newHarnessOpts(b, harnessOpts{noConsumers: true}) }

func newHarnessOpts(t testing.TB, opts harnessOpts) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, clock: lifecycle.NewManualClock(t0)}
	h.pg = pgtest.New(t, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	h.nats = natstest.Start(t)
	js := h.nats.JetStream(t)
	require.NoError(t, events.EnsureStreams(ctx, js, events.StreamsConfig{}))
	var err error
	h.outbox, err = events.NewOutbox(events.OutboxConfig{Region: owner.DefaultRegion, Now: h.clock.Now})
	require.NoError(t, err)
	h.store = postgres.New(h.pg.DB, h.outbox)

	dir := t.TempDir()
	for _, d := range []string{"objects", "backups"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o700))
	}
	h.objects, err = fileblob.OpenBucket(filepath.Join(dir, "objects"), nil)
	require.NoError(t, err)
	h.ledger, err = fileblob.OpenBucket(filepath.Join(dir, "backups"), nil)
	require.NoError(t, err)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	h.pub = pub
	signer, err := lifecycle.NewSigner(priv)
	require.NoError(t, err)

	// Nothing listens here: every downstream call fails fast, like an outage.
	down, err := grpcclient.Dial("127.0.0.1:1", grpctest.NewPKI(t).Source(t, workload.DataLifecycle).ClientCredentials(workload.Must(workload.DefaultTrustDomain, workload.Tenant)), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = down.Close() })
	h.w, err = workflow.New(workflow.Config{
		Store: h.store, Tenant: tenantv1.NewTenantAdminServiceClient(down), Apps: appsv1.NewAppsInternalServiceClient(down),
		Keys: vaultv1.NewKeyServiceClient(down), Crypto: vaultv1.NewCryptoServiceClient(down),
		Objects: h.objects, Ledger: h.ledger, Signer: signer, Clock: h.clock,
		Logger: slog.New(slog.DiscardHandler), PurgeRetryAfter: 10 * time.Minute, CallTimeout: 2 * time.Second,
		Interrupt: opts.interrupt,
	})
	require.NoError(t, err)

	relay, err := events.NewRelay(events.RelayConfig{DB: h.pg.DB, JS: js, ListenURL: h.pg.RuntimeURL, PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	if !opts.noConsumers {
		cons := lcevents.Consumers(h.w, h.pg.DB, nil)
		for i := range cons {
			cons[i].BackOff = []time.Duration{200 * time.Millisecond}
		}
		cdone := make(chan struct{})
		go func() { defer close(cdone); _ = lcevents.Run(ctx, js, cons) }()
		t.Cleanup(func() { cancel(); <-cdone })
	}
	t.Cleanup(func() { cancel(); <-done })

	pki := grpctest.NewPKI(t)
	addr := pki.Start(t, grpctest.Server{
		Name: workload.DataLifecycle, Table: grpcapi.Table(), Region: owner.DefaultRegion,
		Register: func(s grpc.ServiceRegistrar) { grpcapi.Register(s, h.w) },
	})
	cc := pki.Dial(t, addr, workload.Gateway, workload.DataLifecycle)
	h.export = lifecyclev1.NewExportServiceClient(cc)
	h.delete = lifecyclev1.NewDeletionServiceClient(cc)
	return h
}

func (h *harness) as(o owner.ID) context.Context { return grpctest.AsOwner(h.ctx, o) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func jetstreamSubjects(filter string) jetstream.StreamInfoOpt {
	return jetstream.WithSubjectFilter(filter)
}
