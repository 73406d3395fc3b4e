// Package stacktest runs the real services of the suite, as separate processes built from
// this repository, for tests that cross service boundaries: the gateway's JSON routes over
// every service, the sandbox origin in a browser, export and purge workflows. Each stack gets
// its own databases (named apart, dropped at the end), an in-process JetStream server the
// test can stop and restart, freshly minted certificates, and free loopback ports.
//
// A service test cannot import another service; it can run it. This is the one way to do so.
package stacktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/devstack"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Options says which services to run.
type Options struct {
	// Services to run; dependencies are not added automatically.
	Services []string
	// Env adds variables per service.
	Env map[string][]string
	// DevMode turns on development conveniences (the gateway's development identity provider).
	DevMode bool
}

// Stack is a running set of services for one test.
type Stack struct {
	*devstack.Stack
	NATS *natstest.Server
	logs *syncBuffer
}

// Start builds and starts the services and stops them when the test ends. On failure the
// services' output is printed.
func Start(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	root, err := repoRoot()
	require.NoError(tb, err)
	bin := tb.TempDir()
	build(tb, root, bin, opts.Services)

	ns := natstest.Start(tb)
	suffix := "_" + randomHex(tb, 5)
	logs := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := devstack.Start(ctx, devstack.Config{
		Root:           root,
		StateDir:       tb.TempDir(),
		BinDir:         bin,
		Services:       opts.Services,
		AdminURL:       pgtest.AdminURL(),
		NATSURL:        ns.URL(),
		RandomPorts:    true,
		DatabaseSuffix: suffix,
		Env:            opts.Env,
		DevMode:        opts.DevMode,
		Stdout:         logs,
	})
	if err != nil {
		tb.Logf("service output:\n%s", logs.String())
		require.NoError(tb, err)
	}
	s := &Stack{Stack: st, NATS: ns, logs: logs}
	tb.Cleanup(func() {
		st.Stop()
		if tb.Failed() {
			tb.Logf("service output:\n%s", logs.tail(400))
		}
	})
	return s
}

// Logs returns everything the services printed so far (tests scan it for secrets).
func (s *Stack) Logs() string { return s.logs.String() }

// Dial connects to service as workload `as` over mTLS.
func (s *Stack) Dial(tb testing.TB, service, as string) *grpc.ClientConn {
	tb.Helper()
	src, err := s.ClientSource(as)
	require.NoError(tb, err)
	cc, err := grpcclient.Dial(s.Addr(service), src.ClientCredentials(workload.Must(workload.DefaultTrustDomain, service)), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// HTTPClient returns a client trusting the stack's CA (for the gateway and sandbox origin).
func (s *Stack) HTTPClient(tb testing.TB) *http.Client {
	tb.Helper()
	caPEM, err := os.ReadFile(filepath.Join(s.CertDir(), "ca.pem"))
	require.NoError(tb, err)
	pool := x509.NewCertPool()
	require.True(tb, pool.AppendCertsFromPEM(caPEM))
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// MigratorPool connects to a service's database as its migration role (the table owner, with
// BYPASSRLS), for tests that inspect every row regardless of tenant.
func (s *Stack) MigratorPool(tb testing.TB, service string) *pgxpool.Pool {
	tb.Helper()
	migrationURL, _, err := s.DatabaseURLs(service)
	require.NoError(tb, err)
	pool, err := pgxpool.New(context.Background(), migrationURL)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool
}

// build compiles each service's binary into dir.
func build(tb testing.TB, root, dir string, services []string) {
	tb.Helper()
	for _, svc := range services {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, svc), "./services/"+svc+"/cmd/"+svc)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		require.NoError(tb, err, "go build %s:\n%s", svc, out)
	}
}

// repoRoot finds the directory holding go.work, walking up from the test's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("stacktest: go.work not found above the test directory")
		}
		dir = parent
	}
}

func randomHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(tb, err)
	return hex.EncodeToString(b)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) tail(lines int) string {
	all := strings.Split(s.String(), "\n")
	if len(all) > lines {
		all = append([]string{fmt.Sprintf("... %d earlier lines", len(all)-lines)}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}
