package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/workload"
)

func TestServerRefusesAtHandshake(t *testing.T) {
	ca := newCA(t)
	otherCA := newCA(t)
	server := staticSource(t, issueWorkload(t, ca, appsID), ca.CertPEM())
	roots := certPool(t, ca.CertPEM())

	// tlsClient is a standard TLS client, not ours: the server must stand on its own.
	tlsClient := func(p *pair, maxVersion uint16) credentials.TransportCredentials {
		cfg := &tls.Config{RootCAs: roots, ServerName: workload.Apps, MinVersion: tls.VersionTLS12, MaxVersion: maxVersion}
		if p != nil {
			cfg.Certificates = []tls.Certificate{keyPair(t, *p)}
		}
		return credentials.NewTLS(cfg)
	}
	valid := issueWorkload(t, ca, gatewayID)
	now := time.Now()

	tests := []struct {
		name  string
		creds credentials.TransportCredentials
		// serverErr is part of the server's handshake error: the refusal has the right cause.
		serverErr string
	}{
		{name: "plaintext", creds: insecure.NewCredentials(), serverErr: "does not look like a TLS handshake"},
		{name: "no client certificate", creds: tlsClient(nil, 0), serverErr: "didn't provide a certificate"},
		{
			name:      "certificate from another CA",
			creds:     tlsClient(new(issueWorkload(t, otherCA, gatewayID)), 0),
			serverErr: "unknown authority",
		},
		{
			name: "expired certificate",
			creds: tlsClient(new(issue(t, ca, devca.IssueRequest{
				Workload: gatewayID, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour),
			})), 0),
			serverErr: "expired",
		},
		{
			name: "certificate not yet valid",
			creds: tlsClient(new(issue(t, ca, devca.IssueRequest{
				Workload: gatewayID, NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour),
			})), 0),
			serverErr: "not yet valid",
		},
		{
			name: "client certificate without URI SAN",
			creds: tlsClient(new(signTemplate(t, ca, &x509.Certificate{
				DNSNames: []string{workload.Gateway}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})), 0),
			serverErr: "0 URI SANs",
		},
		{
			name: "client certificate with two workload IDs",
			creds: tlsClient(new(signTemplate(t, ca, &x509.Certificate{
				URIs:        []*url.URL{gatewayID.URL(), workload.Must(trustDomain, workload.DataLifecycle).URL()},
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})), 0),
			serverErr: "2 URI SANs",
		},
		{
			name:      "workload of another trust domain signed by our CA",
			creds:     tlsClient(new(issueWorkload(t, ca, workload.Must("other.test", workload.Gateway))), 0),
			serverErr: "not in trust domain",
		},
		{
			name:      "HTTPS server certificate used as a client certificate",
			creds:     tlsClient(new(issue(t, ca, devca.IssueRequest{DNSNames: []string{"localhost"}})), 0),
			serverErr: "incompatible key usage",
		},
		{
			name:      "TLS 1.2 only",
			creds:     tlsClient(&valid, tls.VersionTLS12),
			serverErr: "version",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, server.ServerCredentials())
			_, err := check(t, ts.addr, tt.creds)
			require.Error(t, err)
			require.ErrorContains(t, ts.handshakeFailure(t), tt.serverErr)
			require.Zero(t, ts.calls.Load(), "no handler ran")
		})
	}

	accepted := []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{name: "our client credentials", creds: staticSource(t, valid, ca.CertPEM()).ClientCredentials(appsID)},
		{name: "a standard TLS 1.3 client", creds: tlsClient(&valid, 0)},
	}
	for _, tt := range accepted {
		t.Run("accepts "+tt.name, func(t *testing.T) {
			ts := startServer(t, server.ServerCredentials())
			leaf, err := check(t, ts.addr, tt.creds)
			require.NoError(t, err)
			require.Equal(t, int64(1), ts.calls.Load())
			require.Equal(t, gatewayID, ts.lastCaller(), "the handler sees the verified caller")
			id, err := workload.FromCertificate(leaf)
			require.NoError(t, err)
			require.Equal(t, appsID, id)
		})
	}
}

// TestServerTLSConfigWithoutGRPC uses the configuration on a plain TLS listener, as a non-gRPC
// server would, with ClientTLSConfig on the other end.
func TestServerTLSConfigWithoutGRPC(t *testing.T) {
	ca := newCA(t)
	server := staticSource(t, issueWorkload(t, ca, appsID), ca.CertPEM())
	client := staticSource(t, issueWorkload(t, ca, gatewayID), ca.CertPEM())

	lis, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerTLSConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = lis.Close() })

	type result struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn) //nolint:forcetypeassert // tls.Listen returns *tls.Conn
		err = tc.Handshake()
		done <- result{state: tc.ConnectionState(), err: err}
	}()

	conn, err := tls.Dial("tcp", lis.Addr().String(), client.ClientTLSConfig(appsID))
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, uint16(tls.VersionTLS13), conn.ConnectionState().Version)

	res := <-done
	require.NoError(t, res.err)
	require.NotEmpty(t, res.state.VerifiedChains)
	id, err := workload.FromCertificate(res.state.VerifiedChains[0][0])
	require.NoError(t, err)
	require.Equal(t, gatewayID, id)
}

func TestIdentity(t *testing.T) {
	ca := newCA(t)
	src := staticSource(t, issueWorkload(t, ca, appsID), ca.CertPEM())
	require.Equal(t, appsID, src.Identity())
}
