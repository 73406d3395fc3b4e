package mtls

import (
	"crypto/tls"
	"errors"
	"log/slog"
)

// ServingSource is a reloading HTTPS server certificate for the servers browsers talk to (the
// gateway and the sandbox origin). It asks for no client certificate and names no workload:
// browsers authenticate with sessions and view tickets, not with certificates.
type ServingSource struct {
	src *Source
}

// NewServingSource loads certFile and keyFile and re-reads them, like a Source, when they
// change on disk.
func NewServingSource(certFile, keyFile string, logger *slog.Logger, opts ...Option) (*ServingSource, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("mtls: certificate and key files are required")
	}
	src := newSource(Files{CertFile: certFile, KeyFile: keyFile}, "", logger, opts)
	if err := src.Reload(); err != nil {
		return nil, err
	}
	return &ServingSource{src: src}, nil
}

// TLSConfig is the configuration for an HTTPS server (http.Server.TLSConfig). TLS 1.2 is the
// floor, as browser-facing servers commonly allow; Go offers only forward-secret AEAD suites
// for it by default.
func (s *ServingSource) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.src.material().cert, nil
		},
	}
}

// Reload re-reads the files now; on error the previous certificate keeps serving.
func (s *ServingSource) Reload() error { return s.src.Reload() }
