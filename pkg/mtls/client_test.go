package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"

	"github.com/forgeapps/backbone/pkg/devca"
	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/workload"
)

func TestClientRefusesWrongServer(t *testing.T) {
	ca := newCA(t)
	otherCA := newCA(t)
	client := staticSource(t, issueWorkload(t, ca, gatewayID), ca.CertPEM())
	now := time.Now()

	tests := []struct {
		name   string
		server pair
		// wantErr is part of the client's error; "" means the call succeeds.
		wantErr string
	}{
		{name: "the expected workload", server: issueWorkload(t, ca, appsID)},
		{name: "another workload", server: issueWorkload(t, ca, gatewayID), wantErr: "certificate is valid for gateway"},
		{
			// Only the SPIFFE check catches this one: the DNS name is right.
			name: "another workload's ID under the expected DNS name",
			server: signTemplate(t, ca, &x509.Certificate{
				DNSNames: []string{workload.Apps}, URIs: []*url.URL{gatewayID.URL()},
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}),
			wantErr: "server is spiffe://forge.internal/gateway, want spiffe://forge.internal/apps",
		},
		{
			name:    "the expected name in another trust domain",
			server:  issueWorkload(t, ca, workload.Must("other.test", workload.Apps)),
			wantErr: "server is spiffe://other.test/apps",
		},
		{
			name: "no workload ID",
			server: signTemplate(t, ca, &x509.Certificate{
				DNSNames: []string{workload.Apps}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}),
			wantErr: "0 URI SANs",
		},
		{name: "the expected workload from another CA", server: issueWorkload(t, otherCA, appsID), wantErr: "unknown authority"},
		{
			name: "the expected workload, expired",
			server: issue(t, ca, devca.IssueRequest{
				Workload: appsID, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour),
			}),
			wantErr: "expired",
		},
		{
			name: "the expected workload without server auth",
			server: signTemplate(t, ca, &x509.Certificate{
				DNSNames: []string{workload.Apps}, URIs: []*url.URL{appsID.URL()},
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			}),
			wantErr: "incompatible key usage",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A standard TLS server that presents whatever certificate the case gives it.
			ts := startServer(t, credentials.NewTLS(&tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{keyPair(t, tt.server)},
				ClientAuth:   tls.RequireAnyClientCert,
			}))
			leaf, err := check(t, ts.addr, client.ClientCredentials(appsID))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Zero(t, ts.calls.Load(), "the client sent no request")
				return
			}
			require.NoError(t, err)
			require.Equal(t, serialOf(t, tt.server), leaf.SerialNumber)
		})
	}
}

func TestClientCredentialsInterface(t *testing.T) {
	ca := newCA(t)
	client := staticSource(t, issueWorkload(t, ca, gatewayID), ca.CertPEM())
	creds := client.ClientCredentials(appsID)

	info := creds.Info()
	require.Equal(t, "tls", info.SecurityProtocol)
	require.Equal(t, "1.3", info.SecurityVersion)
	require.Equal(t, workload.Apps, info.ServerName, "the expected workload names the server")

	clone := creds.Clone()
	require.NoError(t, clone.OverrideServerName("apps.internal.example"))
	require.Equal(t, "apps.internal.example", clone.Info().ServerName)
	require.Equal(t, workload.Apps, creds.Info().ServerName, "overriding a clone leaves the original alone")
	require.Error(t, clone.OverrideServerName(""))

	conn, peerConn := net.Pipe()
	defer peerConn.Close()
	_, _, err := creds.ServerHandshake(conn)
	require.Error(t, err, "client credentials never accept connections")

	// The overridden name is what the server certificate is checked against, and the
	// SPIFFE ID is still required.
	server := signTemplate(t, ca, &x509.Certificate{
		DNSNames: []string{"apps.internal.example"}, URIs: []*url.URL{appsID.URL()},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	ts := startServer(t, credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{keyPair(t, server)},
	}))
	_, err = check(t, ts.addr, creds)
	require.ErrorContains(t, err, "not apps", "the original verifies the workload's DNS name")
	_, err = check(t, ts.addr, clone)
	require.NoError(t, err)

	_, err = check(t, ts.addr, client.ClientCredentials(workload.ID{}))
	require.ErrorContains(t, err, "without an expected server workload")
}

func TestServiceTLSConfigVerifiesAgainstTheBundle(t *testing.T) {
	ca, err := devca.New("bundle CA", time.Hour)
	require.NoError(t, err)
	other, err := devca.New("other CA", time.Hour)
	require.NoError(t, err)
	clientCert, clientKey, err := ca.Issue(devca.IssueRequest{Workload: workload.Must(workload.DefaultTrustDomain, "apps")})
	require.NoError(t, err)
	src, err := mtls.NewStaticSource(clientCert, clientKey, ca.CertPEM(), workload.DefaultTrustDomain)
	require.NoError(t, err)

	serve := func(issuer *devca.CA) (string, chan *x509.Certificate) {
		certPEM, keyPEM, err := issuer.Issue(devca.IssueRequest{DNSNames: []string{"nats.internal"}})
		require.NoError(t, err)
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		require.NoError(t, err)
		pool := x509.NewCertPool()
		pool.AddCert(ca.Certificate())
		l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		seen := make(chan *x509.Certificate, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				seen <- tc.ConnectionState().PeerCertificates[0]
			}
		}()
		return l.Addr().String(), seen
	}

	addr, seen := serve(ca)
	cfg := src.ServiceTLSConfig()
	cfg.ServerName = "nats.internal"
	c, err := tls.Dial("tcp", addr, cfg)
	require.NoError(t, err)
	require.NoError(t, c.Handshake())
	_ = c.Close()
	peer := <-seen
	require.Equal(t, "spiffe://forge.internal/apps", peer.URIs[0].String(), "the workload certificate is presented")

	addr, _ = serve(other)
	cfg = src.ServiceTLSConfig()
	cfg.ServerName = "nats.internal"
	_, err = tls.Dial("tcp", addr, cfg)
	require.Error(t, err, "a server outside the bundle is refused")
}
