package mtls_test

import (
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkHandshake measures one full mutual TLS 1.3 handshake over loopback, including the
// per-handshake material lookup and both SPIFFE checks.
func BenchmarkHandshake(b *testing.B) {
	ca := newCA(b)
	server := staticSource(b, issueWorkload(b, ca, appsID), ca.CertPEM())
	client := staticSource(b, issueWorkload(b, ca, gatewayID), ca.CertPEM())

	lis, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerTLSConfig())
	require.NoError(b, err)
	b.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.(*tls.Conn).Handshake() //nolint:forcetypeassert // tls.Listen returns *tls.Conn
				// Wait for the client's close so the handshake is not cut short.
				_, _ = conn.Read(make([]byte, 1))
			}()
		}
	}()

	cfg := client.ClientTLSConfig(appsID)
	for b.Loop() {
		conn, err := tls.Dial("tcp", lis.Addr().String(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		_ = conn.Close()
	}
}
