package mtls_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/workload"
)

const trustDomain = workload.DefaultTrustDomain

var (
	appsID    = workload.Must(trustDomain, workload.Apps)
	gatewayID = workload.Must(trustDomain, workload.Gateway)
)

// pair is a PEM certificate and its PEM key.
type pair struct{ cert, key []byte }

func newCA(tb testing.TB) *devca.CA {
	tb.Helper()
	ca, err := devca.New("test CA", 24*time.Hour)
	require.NoError(tb, err)
	return ca
}

func issue(tb testing.TB, ca *devca.CA, req devca.IssueRequest) pair {
	tb.Helper()
	certPEM, keyPEM, err := ca.Issue(req)
	require.NoError(tb, err)
	return pair{cert: certPEM, key: keyPEM}
}

func issueWorkload(tb testing.TB, ca *devca.CA, id workload.ID) pair {
	tb.Helper()
	return issue(tb, ca, devca.IssueRequest{Workload: id, DNSNames: []string{"localhost"}})
}

// signTemplate signs a hand-made leaf with ca, for certificates devca deliberately cannot
// issue (client auth without a workload ID, two IDs, a DNS name that disagrees with the ID).
func signTemplate(tb testing.TB, ca *devca.CA, tmpl *x509.Certificate) pair {
	tb.Helper()
	block, _ := pem.Decode(ca.KeyPEM())
	require.NotNil(tb, block)
	caKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	require.NoError(tb, err)

	leaf := issue(tb, ca, devca.IssueRequest{DNSNames: []string{"unused"}}) // for a fresh key
	keyBlock, _ := pem.Decode(leaf.key)
	require.NotNil(tb, keyBlock)
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	require.NoError(tb, err)
	signer, ok := key.(crypto.Signer)
	require.True(tb, ok)

	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(tb, err)
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Minute)
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate(), signer.Public(), caKey)
	require.NoError(tb, err)
	return pair{cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: leaf.key}
}

func keyPair(tb testing.TB, p pair) tls.Certificate {
	tb.Helper()
	cert, err := tls.X509KeyPair(p.cert, p.key)
	require.NoError(tb, err)
	return cert
}

func certPool(tb testing.TB, bundles ...[]byte) *x509.CertPool {
	tb.Helper()
	pool := x509.NewCertPool()
	for _, b := range bundles {
		require.True(tb, pool.AppendCertsFromPEM(b))
	}
	return pool
}

func serialOf(tb testing.TB, p pair) *big.Int {
	tb.Helper()
	return keyPair(tb, p).Leaf.SerialNumber
}

// writeAtomic replaces path the way rotators do (write a temporary file, rename it over).
func writeAtomic(tb testing.TB, path string, data []byte) {
	tb.Helper()
	tmp := path + ".tmp"
	require.NoError(tb, os.WriteFile(tmp, data, 0o600))
	require.NoError(tb, os.Rename(tmp, path))
}

// writeFiles writes a workload's certificate, key and bundle into dir and names them.
func writeFiles(tb testing.TB, dir, name string, p pair, bundle ...[]byte) mtls.Files {
	tb.Helper()
	files := mtls.Files{
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
		CAFile:   filepath.Join(dir, name+"-ca.pem"),
	}
	writeAtomic(tb, files.CertFile, p.cert)
	writeAtomic(tb, files.KeyFile, p.key)
	writeAtomic(tb, files.CAFile, bytes.Join(bundle, nil))
	return files
}

func staticSource(tb testing.TB, p pair, caPEM []byte) *mtls.Source {
	tb.Helper()
	src, err := mtls.NewStaticSource(p.cert, p.key, caPEM, trustDomain)
	require.NoError(tb, err)
	return src
}

// fakeClock is a clock tests step by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a log sink tests read while servers write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recordingCreds reports every failed server handshake, so a test can show that a refusal
// happened at the handshake and not later.
type recordingCreds struct {
	credentials.TransportCredentials
	failures chan error
}

func (c *recordingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		select {
		case c.failures <- err:
		default: // a retrying client may fail more often than the test reads
		}
	}
	return out, info, err
}

func (c *recordingCreds) Clone() credentials.TransportCredentials {
	return &recordingCreds{TransportCredentials: c.TransportCredentials.Clone(), failures: c.failures}
}

// testServer is a real gRPC server on loopback serving the standard health service. calls
// counts requests that reached the handler chain; callers records their verified workload.
type testServer struct {
	addr     string
	calls    atomic.Int64
	failures chan error

	mu      sync.Mutex
	callers []workload.ID
}

func startServer(tb testing.TB, creds credentials.TransportCredentials) *testServer {
	tb.Helper()
	ts := &testServer{failures: make(chan error, 64)}
	srv := grpc.NewServer(
		grpc.Creds(&recordingCreds{TransportCredentials: creds, failures: ts.failures}),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			ts.calls.Add(1)
			if id, err := workload.FromPeer(ctx); err == nil {
				ts.mu.Lock()
				ts.callers = append(ts.callers, id)
				ts.mu.Unlock()
			}
			return handler(ctx, req)
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	ts.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	return ts
}

// handshakeFailure waits (with a deadline) for the server to report a failed handshake.
func (ts *testServer) handshakeFailure(tb testing.TB) error {
	tb.Helper()
	select {
	case err := <-ts.failures:
		return err
	case <-time.After(5 * time.Second):
		tb.Fatal("the server reported no failed handshake")
		return nil
	}
}

// forgetFailures drops the handshake failures reported so far.
func (ts *testServer) forgetFailures() {
	for {
		select {
		case <-ts.failures:
		default:
			return
		}
	}
}

func (ts *testServer) lastCaller() workload.ID {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.callers) == 0 {
		return workload.ID{}
	}
	return ts.callers[len(ts.callers)-1]
}

// check makes one health check over a new connection and returns the server's leaf.
func check(tb testing.TB, addr string, creds credentials.TransportCredentials) (*x509.Certificate, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	require.NoError(tb, err)
	defer conn.Close()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		return nil, err
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	require.True(tb, ok, "the call ran over TLS")
	require.NotEmpty(tb, info.State.PeerCertificates)
	return info.State.PeerCertificates[0], nil
}
