package mtls

import (
	"crypto/tls"
	"errors"
	"fmt"

	"google.golang.org/grpc/credentials"

	"github.com/forgeapps/backbone/pkg/workload"
)

// ServerTLSConfig is the TLS configuration of a workload's server: TLS 1.3 only, a client
// certificate required and verified against the current CA bundle, and the client's
// certificate required to carry exactly one SPIFFE ID of our trust domain. Plaintext, a
// missing, expired or foreign certificate, and a certificate naming no workload all fail the
// handshake, before any request is read.
//
// Each handshake gets the material current at that moment (GetConfigForClient), so a rotated
// certificate or trust bundle applies to new connections without a restart.
func (s *Source) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.material().cert, nil
		},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.serverConfig(s.material()), nil
		},
	}
}

// serverConfig is the configuration of one handshake: certificate and bundle from the same
// generation of material.
func (s *Source) serverConfig(m *material) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  m.pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return m.cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := verifiedPeer(cs)
			if err != nil {
				return err
			}
			if id.TrustDomain() != s.trustDomain {
				return fmt.Errorf("mtls: client %s is not in trust domain %q", id, s.trustDomain)
			}
			return nil
		},
	}
}

// ServerCredentials are the gRPC transport credentials of ServerTLSConfig, for
// grpc.NewServer(grpc.Creds(...)).
func (s *Source) ServerCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(s.ServerTLSConfig())
}

// verifiedPeer reads the workload ID of the peer's verified leaf. crypto/tls only calls
// VerifyConnection after the chain verified, but an empty chain is refused here too rather
// than trusted.
func verifiedPeer(cs tls.ConnectionState) (workload.ID, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return workload.ID{}, errors.New("mtls: peer certificate not verified")
	}
	id, err := workload.FromCertificate(cs.VerifiedChains[0][0])
	if err != nil {
		return workload.ID{}, fmt.Errorf("mtls: peer: %w", err)
	}
	return id, nil
}
