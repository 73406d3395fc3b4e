// Package workload names the services of the suite as mTLS peers: SPIFFE-style IDs
// (spiffe://<trust-domain>/<service>) carried as the URI SAN of each workload certificate,
// read back from a verified peer certificate, and kept in the request context once verified.
//
// A workload identity says which program is calling; it never says which tenant the call is
// for (that is the owner package's job).
package workload

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// DefaultTrustDomain is the trust domain of the suite's workload certificates.
const DefaultTrustDomain = "forge.internal"

// The workload names of the suite. Billing and Builder are external workloads that call
// declared system methods; they have certificates but no service in this repository.
const (
	Gateway       = "gateway"
	Tenant        = "tenant"
	Apps          = "apps"
	SecretsVault  = "secrets-vault"
	SandboxOrigin = "sandbox-origin"
	DataLifecycle = "data-lifecycle"
	Billing       = "billing"
	Builder       = "builder"
)

// Services lists the workloads built in this repository, in start-up order.
func Services() []string {
	return []string{SecretsVault, Tenant, Apps, SandboxOrigin, DataLifecycle, Gateway}
}

// ID is a SPIFFE-style workload ID. The zero value is "no workload".
type ID struct {
	trustDomain string
	name        string
}

var (
	trustDomainRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,250}$`)
	nameRE        = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
)

// New returns the ID of workload name in trustDomain.
func New(trustDomain, name string) (ID, error) {
	if !trustDomainRE.MatchString(trustDomain) {
		return ID{}, fmt.Errorf("workload id: invalid trust domain %q", trustDomain)
	}
	if !nameRE.MatchString(name) {
		return ID{}, fmt.Errorf("workload id: invalid name %q", name)
	}
	return ID{trustDomain: trustDomain, name: name}, nil
}

// Must is New for constants; it panics on an invalid name.
func Must(trustDomain, name string) ID {
	id, err := New(trustDomain, name)
	if err != nil {
		panic(err)
	}
	return id
}

// Parse reads "spiffe://<trust-domain>/<name>". Query, fragment, user info, port and
// multi-segment paths are refused: an ID has exactly one form.
func Parse(s string) (ID, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("workload id: %w", err)
	}
	return fromURL(u)
}

func fromURL(u *url.URL) (ID, error) {
	if u.Scheme != "spiffe" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" || u.Opaque != "" {
		return ID{}, fmt.Errorf("workload id %q: not a spiffe://<trust-domain>/<name> URI", u.String())
	}
	name, ok := strings.CutPrefix(u.Path, "/")
	if !ok || strings.Contains(name, "/") {
		return ID{}, fmt.Errorf("workload id %q: path must be one segment", u.String())
	}
	return New(u.Host, name)
}

// IsZero reports whether id is the zero value.
func (id ID) IsZero() bool { return id.name == "" }

// Name is the workload name (the path segment), for example "apps".
func (id ID) Name() string { return id.name }

// TrustDomain is the trust domain of the ID.
func (id ID) TrustDomain() string { return id.trustDomain }

// String returns the URI form.
func (id ID) String() string {
	if id.IsZero() {
		return ""
	}
	return "spiffe://" + id.trustDomain + "/" + id.name
}

// URL returns the URI form as a URL, for a certificate's URI SAN.
func (id ID) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.trustDomain, Path: "/" + id.name}
}

// FromCertificate reads the workload ID of a certificate: exactly one URI SAN, a valid
// spiffe ID. Certificates with none or several are refused.
func FromCertificate(cert *x509.Certificate) (ID, error) {
	if cert == nil {
		return ID{}, errors.New("workload id: no certificate")
	}
	if len(cert.URIs) != 1 {
		return ID{}, fmt.Errorf("workload id: certificate has %d URI SANs, want exactly 1", len(cert.URIs))
	}
	return fromURL(cert.URIs[0])
}

// FromPeer reads the workload ID of the verified mTLS peer of a gRPC call. It fails for a
// plaintext peer and for a TLS peer whose chain was not verified.
func FromPeer(ctx context.Context) (ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return ID{}, errors.New("workload id: no peer")
	}
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ID{}, errors.New("workload id: peer is not TLS")
	}
	if len(tlsInfo.State.VerifiedChains) == 0 || len(tlsInfo.State.VerifiedChains[0]) == 0 {
		return ID{}, errors.New("workload id: peer certificate not verified")
	}
	return FromCertificate(tlsInfo.State.VerifiedChains[0][0])
}

type ctxKey struct{}

// NewContext returns a context carrying the verified calling workload.
func NewContext(ctx context.Context, id ID) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the verified calling workload, if the authorization interceptor set one.
func FromContext(ctx context.Context) (ID, bool) {
	id, ok := ctx.Value(ctxKey{}).(ID)
	return id, ok && !id.IsZero()
}
