// Package grpctest runs services the way production does, for tests: a real gRPC server with
// mTLS, the full interceptor chain and the service's workload table, on a loopback port, and
// clients holding workload certificates minted by a throwaway development CA. Nothing is
// mocked: a test that passes here passed through the same handshake, authorization and owner
// checks as a production call.
package grpctest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/grpcclient"
	"github.com/forgeapps/backbone/pkg/grpcserver"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"
)

// PKI is a throwaway CA for one test.
type PKI struct {
	CA          *devca.CA
	TrustDomain string
}

// NewPKI creates a CA for the test.
func NewPKI(tb testing.TB) *PKI {
	tb.Helper()
	ca, err := devca.New("grpctest CA", time.Hour)
	require.NoError(tb, err)
	return &PKI{CA: ca, TrustDomain: workload.DefaultTrustDomain}
}

// ID returns the workload ID of name in the PKI's trust domain.
func (p *PKI) ID(name string) workload.ID { return workload.Must(p.TrustDomain, name) }

// Source returns an mTLS source holding a fresh certificate for workload name.
func (p *PKI) Source(tb testing.TB, name string) *mtls.Source {
	tb.Helper()
	now := time.Now()
	certPEM, keyPEM, err := p.CA.Issue(devca.IssueRequest{
		Workload:  p.ID(name),
		DNSNames:  []string{name, "localhost"},
		IPs:       []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Minute),
		NotAfter:  now.Add(time.Hour),
	})
	require.NoError(tb, err)
	src, err := mtls.NewStaticSource(certPEM, keyPEM, p.CA.CertPEM(), p.TrustDomain)
	require.NoError(tb, err)
	return src
}

// Server describes a server to start.
type Server struct {
	// Name is the workload name the server presents.
	Name     string
	Table    authz.Table
	Region   owner.Region
	Logger   *slog.Logger
	Register func(grpc.ServiceRegistrar)
}

// Start serves s on a loopback port until the test ends and returns its address.
func (p *PKI) Start(tb testing.TB, s Server) string {
	tb.Helper()
	if s.Region == "" {
		s.Region = owner.DefaultRegion
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := grpcserver.New(grpcserver.Config{
		Name:          s.Name,
		Credentials:   p.Source(tb, s.Name).ServerCredentials(),
		Table:         s.Table,
		Region:        s.Region,
		Logger:        s.Logger,
		ShutdownGrace: 5 * time.Second,
	}, s.Register)
	require.NoError(tb, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, nil) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("grpctest: server %s: %v", s.Name, err)
		}
	})
	return lis.Addr().String()
}

// Dial connects to addr as workload `as`, expecting the server to be workload `server`.
func (p *PKI) Dial(tb testing.TB, addr, as, server string) *grpc.ClientConn {
	tb.Helper()
	cc, err := grpcclient.Dial(addr, p.Source(tb, as).ClientCredentials(p.ID(server)), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// AsOwner returns ctx acting for o (what the edge does after authenticating a person).
func AsOwner(ctx context.Context, o owner.ID) context.Context {
	return owner.NewContext(ctx, owner.Owner{ID: o, HomeRegion: owner.DefaultRegion})
}

// FreeAddrs returns n distinct free loopback addresses for a server under test to bind. The
// listeners are held until all n are picked, so the kernel cannot hand the same port out
// twice (a port closed as soon as it is picked can come back on the next pick).
func FreeAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	addrs := make([]string, 0, n)
	held := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		held = append(held, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}
