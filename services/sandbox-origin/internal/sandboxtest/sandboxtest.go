package sandboxtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/events"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/appcache"
	sandboxevents "github.com/forgeapps/backbone/services/sandbox-origin/internal/events"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/httpapi"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/postgres"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/remote"
)

// ConsoleOrigin is the console origin the test sandbox allows to frame apps.
const ConsoleOrigin = "https://localhost:8443"

// Options tunes Start.
type Options struct {
	// Events runs the invalidation consumer against an in-process JetStream.
	Events bool
	// CacheTTL defaults to an hour, so that only events (or a test) invalidate.
	CacheTTL time.Duration
	// ProxyAllow, ProxyRoots and ProxyBurst configure the secret proxy.
	ProxyAllow []string
	ProxyRoots *x509.CertPool
	ProxyBurst int
}

// Sandbox is a running sandbox origin.
type Sandbox struct {
	Apps   *Apps
	Vault  *Vault
	Clock  *Clock
	PG     *pgtest.Env
	Store  *postgres.Store
	Cache  *appcache.Cache
	Remote *remote.Client
	Domain origin.Domain
	PKI    *grpctest.PKI
	// Addr is the HTTPS listener.
	Addr string
	// NATS and JetStream are set with Options.Events.
	NATS      *natstest.Server
	JetStream jetstream.JetStream

	caPEM []byte
	logs  *syncBuffer
}

// Schema and sources, as the service migrates them.
func DatabaseSpec() pgtest.Spec {
	return pgtest.Spec{Schema: postgres.Schema, Sources: []database.Source{
		{Name: events.MigrationSourceName, FS: events.Migrations()},
		{Name: postgres.SourceName, FS: postgres.Migrations()},
	}}
}

// AppsTable is the stand-in apps server's workload table: the three sandbox methods for this
// workload, every other method of the service for data-lifecycle.
func AppsTable() authz.Table {
	sd := appsv1.AppsInternalService_ServiceDesc
	t := authz.Table{}
	add := func(name string) {
		full := "/" + sd.ServiceName + "/" + name
		switch full {
		case appsv1.AppsInternalService_GetServableApp_FullMethodName, appsv1.AppsInternalService_CheckViewer_FullMethodName,
			appsv1.AppsInternalService_CheckShareToken_FullMethodName:
			t[full] = authz.SystemMethod(workload.SandboxOrigin)
		default:
			t[full] = authz.SystemMethod(workload.DataLifecycle)
		}
	}
	for _, m := range sd.Methods {
		add(m.MethodName)
	}
	for _, m := range sd.Streams {
		add(m.StreamName)
	}
	return t.WithStandardServices()
}

// Start builds and serves a sandbox origin for tb.
func Start(tb testing.TB, opts Options) *Sandbox {
	tb.Helper()
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Hour
	}
	if opts.ProxyBurst == 0 {
		opts.ProxyBurst = 1000
	}
	s := &Sandbox{Apps: NewApps(), Vault: NewVault(), Clock: NewClock(), PKI: grpctest.NewPKI(tb), logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	appsAddr := s.PKI.Start(tb, grpctest.Server{Name: workload.Apps, Table: AppsTable(), Register: func(r grpcRegistrar) {
		appsv1.RegisterAppsInternalServiceServer(r, s.Apps)
	}})
	vaultAddr := s.PKI.Start(tb, grpctest.Server{Name: workload.SecretsVault, Table: authz.Table{
		vaultv1.SecretResolverService_ResolveSecret_FullMethodName: authz.Owner(workload.SandboxOrigin),
	}.WithStandardServices(), Register: func(r grpcRegistrar) {
		vaultv1.RegisterSecretResolverServiceServer(r, s.Vault)
	}})
	s.Remote = &remote.Client{
		Apps:   appsv1.NewAppsInternalServiceClient(s.PKI.Dial(tb, appsAddr, workload.SandboxOrigin, workload.Apps)),
		Vault:  vaultv1.NewSecretResolverServiceClient(s.PKI.Dial(tb, vaultAddr, workload.SandboxOrigin, workload.SecretsVault)),
		Region: owner.DefaultRegion,
	}
	s.PG = pgtest.New(tb, DatabaseSpec())
	s.Store = &postgres.Store{DB: s.PG.DB, Now: s.Clock.Now}

	var err error
	s.Cache, err = appcache.New(appcache.Config{
		Source: appcache.Source{
			Fetch: func(ctx context.Context, id uuid.UUID) (*appcache.App, error) {
				a, err := s.Remote.Fetch(ctx, id)
				if err != nil {
					return nil, err
				}
				served, err := s.Store.Served(ctx, a.Owner)
				if err != nil {
					return nil, err
				}
				if !served {
					return nil, appcache.ErrNotFound
				}
				return a, nil
			},
			CheckViewer:     s.Remote.CheckViewer,
			CheckShareToken: s.Remote.CheckShareToken,
		},
		TTL: opts.CacheTTL,
		Now: s.Clock.Now,
	})
	require.NoError(tb, err)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	s.Addr = lis.Addr().String()
	s.Domain, err = origin.ParseDomain("apps.localhost:" + strconv.Itoa(lis.Addr().(*net.TCPAddr).Port))
	require.NoError(tb, err)

	audit := postgres.NewAuditLog(s.Store, 1024, logger)
	sealer, err := origin.NewSealer(secret.New("0123456789abcdef0123456789abcdef"), s.Clock.Now)
	require.NoError(tb, err)
	px, err := proxy.New(proxy.Config{
		Resolve: s.Remote.ResolveSecret,
		Audit: func(ctx context.Context, r proxy.Record) {
			logger.InfoContext(ctx, "proxy call", "app_id", r.App, "secret_name", r.SecretName, "outcome", r.Outcome)
			audit.Record(ctx, r)
		},
		AllowHosts: opts.ProxyAllow, RootCAs: opts.ProxyRoots,
		MaxRequestBytes: 1 << 16, MaxResponseBytes: 1 << 20, Timeout: 5 * time.Second, HeaderTimeout: 2 * time.Second,
		RatePerSecond: 1000, Burst: opts.ProxyBurst, Logger: logger,
	})
	require.NoError(tb, err)
	tb.Cleanup(px.Close)
	web, err := httpapi.New(httpapi.Config{
		Domain: s.Domain, ConsoleOrigin: ConsoleOrigin, Cache: s.Cache, Sealer: sealer, Tickets: s.Store,
		Proxy: px, GrantTTL: 10 * time.Minute, Logger: logger, Now: s.Clock.Now,
	})
	require.NoError(tb, err)
	edge := s.edge(tb)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = audit.Run(ctx)
	}()
	if opts.Events {
		s.NATS = natstest.Start(tb)
		s.JetStream = s.NATS.JetStream(tb)
		require.NoError(tb, events.EnsureStreams(ctx, s.JetStream, events.StreamsConfig{}))
		inv := &sandboxevents.Invalidator{JS: s.JetStream, Cache: s.Cache, Logger: logger,
			RecordStatus: func(ctx context.Context, o owner.ID, status string, at time.Time) error {
				return s.PG.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
					return s.Store.RecordStatus(ctx, tx, o, status, at)
				})
			}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = inv.Run(ctx)
		}()
		select {
		case <-inv.Ready():
		case <-time.After(10 * time.Second):
			tb.Fatal("invalidation consumer did not start")
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := web.Serve(ctx, lis, edge, 2*time.Second); err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("sandbox https server: %v", err)
		}
	}()
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		if tb.Failed() {
			tb.Logf("sandbox logs:\n%s", s.logs.String())
		}
	})
	return s
}

// edge issues the browser-facing certificate for *.apps.localhost from the test CA.
func (s *Sandbox) edge(tb testing.TB) *mtls.ServingSource {
	tb.Helper()
	certPEM, keyPEM, err := s.PKI.CA.Issue(devca.IssueRequest{DNSNames: devca.EdgeDNSNames(), IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	require.NoError(tb, err)
	dir := tb.TempDir()
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "edge.pem"), certPEM, 0o600))
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "edge-key.pem"), keyPEM, 0o600))
	src, err := mtls.NewServingSource(filepath.Join(dir, "edge.pem"), filepath.Join(dir, "edge-key.pem"), nil)
	require.NoError(tb, err)
	s.caPEM = s.PKI.CA.CertPEM()
	return src
}

// Logs is everything the sandbox logged.
func (s *Sandbox) Logs() string { return s.logs.String() }

// URL is an address on app's origin.
func (s *Sandbox) URL(app uuid.UUID, pathAndQuery string) string {
	return s.Domain.Origin(app) + pathAndQuery
}

// Client is an HTTPS client that trusts the test CA, reaches the sandbox for any host name,
// keeps no cookies and follows no redirects.
func (s *Sandbox) Client(tb testing.TB) *http.Client {
	tb.Helper()
	pool := x509.NewCertPool()
	require.True(tb, pool.AppendCertsFromPEM(s.PKI.CA.CertPEM()))
	addr := s.Addr
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
