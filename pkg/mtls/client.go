package mtls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"

	"github.com/forgeapps/backbone/pkg/workload"
)

// ClientTLSConfig is the TLS configuration for calling the workload server: TLS 1.3 only, our
// current certificate presented, the server's chain verified against the CA bundle and its DNS
// name (the workload's name) by crypto/tls, and its SPIFFE ID required to equal server.
//
// The bundle is the one current when ClientTLSConfig is called; the client certificate is
// read at each handshake. A long-lived non-gRPC client should call ClientTLSConfig per
// connection to pick up a rotated bundle; gRPC clients use ClientCredentials, which does.
func (s *Source) ClientTLSConfig(server workload.ID) *tls.Config {
	return s.clientConfig(s.material(), server, server.Name())
}

func (s *Source) clientConfig(m *material, server workload.ID, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    m.pool,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.material().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := verifiedPeer(cs)
			if err != nil {
				return err
			}
			// Equality of IDs covers the trust domain too: a server of another trust
			// domain that our bundle happens to vouch for is still refused.
			if id != server {
				return fmt.Errorf("mtls: server is %s, want %s", id, server)
			}
			return nil
		},
	}
}

// ClientCredentials are gRPC transport credentials for calling the workload server. Every
// handshake builds its TLS configuration from the material current at that moment, so a
// rotated certificate or bundle applies to new connections of an existing grpc.ClientConn.
//
// The server is verified by the name of the expected workload, not by the dialed address:
// the dial target (an IP, a Kubernetes service name) says where to connect, the SPIFFE ID
// says who must answer.
func (s *Source) ClientCredentials(server workload.ID) credentials.TransportCredentials {
	return &clientCredentials{src: s, server: server, serverName: server.Name()}
}

// clientCredentials wraps credentials.NewTLS so that each connection gets fresh RootCAs while
// the handshake, ALPN and connection wrapping stay grpc's own.
type clientCredentials struct {
	src        *Source
	server     workload.ID
	serverName string
}

func (c *clientCredentials) ClientHandshake(ctx context.Context, _ string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.server.IsZero() {
		rawConn.Close() //nolint:errcheck // refusing the connection; nothing to report
		return nil, nil, errors.New("mtls: client credentials without an expected server workload")
	}
	cfg := c.src.clientConfig(c.src.material(), c.server, c.serverName)
	// grpc's TLS credentials take the server name from the authority argument; ours is the
	// expected workload's name, whatever address was dialed.
	return credentials.NewTLS(cfg).ClientHandshake(ctx, c.serverName, rawConn)
}

func (c *clientCredentials) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	rawConn.Close() //nolint:errcheck // refusing the connection; nothing to report
	return nil, nil, errors.New("mtls: client credentials cannot accept connections; use ServerCredentials")
}

func (c *clientCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{
		SecurityProtocol: "tls",
		SecurityVersion:  "1.3",
		ServerName:       c.serverName,
	}
}

func (c *clientCredentials) Clone() credentials.TransportCredentials {
	clone := *c
	return &clone
}

// OverrideServerName changes the DNS name the server certificate is verified against. The
// SPIFFE ID check is unaffected. (grpc no longer calls this; it is part of the interface.)
func (c *clientCredentials) OverrideServerName(name string) error {
	if name == "" {
		return errors.New("mtls: empty server name")
	}
	c.serverName = name
	return nil
}

// ServiceTLSConfig is the TLS configuration for infrastructure servers that are not workloads
// of the suite but are certified by the same trust bundle (NATS, PostgreSQL): the server's
// chain and host name are verified by crypto/tls against the current bundle, and the current
// workload certificate is presented when the server asks for one.
func (s *Source) ServiceTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    s.material().pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.material().cert, nil
		},
	}
}
