package workload_test

import (
	"context"
	"crypto/x509"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/workload"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "service", in: "spiffe://forge.internal/apps", want: "apps"},
		{name: "dashed", in: "spiffe://forge.internal/secrets-vault", want: "secrets-vault"},
		{name: "https scheme", in: "https://forge.internal/apps", wantErr: true},
		{name: "two segments", in: "spiffe://forge.internal/ns/apps", wantErr: true},
		{name: "no path", in: "spiffe://forge.internal", wantErr: true},
		{name: "query", in: "spiffe://forge.internal/apps?x=1", wantErr: true},
		{name: "port", in: "spiffe://forge.internal:443/apps", wantErr: true},
		{name: "user", in: "spiffe://me@forge.internal/apps", wantErr: true},
		{name: "upper case name", in: "spiffe://forge.internal/Apps", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := workload.Parse(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, id.Name())
			require.Equal(t, tt.in, id.String())
			require.Equal(t, tt.in, id.URL().String())
		})
	}
}

func TestFromCertificate(t *testing.T) {
	one := &x509.Certificate{URIs: []*url.URL{workload.Must(workload.DefaultTrustDomain, "apps").URL()}}
	id, err := workload.FromCertificate(one)
	require.NoError(t, err)
	require.Equal(t, "apps", id.Name())

	two := &x509.Certificate{URIs: []*url.URL{one.URIs[0], workload.Must(workload.DefaultTrustDomain, "gateway").URL()}}
	_, err = workload.FromCertificate(two)
	require.Error(t, err, "a certificate naming two workloads is refused")

	_, err = workload.FromCertificate(&x509.Certificate{})
	require.Error(t, err)
}

func TestFromPeerWithoutTLS(t *testing.T) {
	_, err := workload.FromPeer(context.Background())
	require.Error(t, err)
}

func TestContext(t *testing.T) {
	_, ok := workload.FromContext(context.Background())
	require.False(t, ok)
	id := workload.Must(workload.DefaultTrustDomain, workload.Gateway)
	got, ok := workload.FromContext(workload.NewContext(context.Background(), id))
	require.True(t, ok)
	require.Equal(t, id, got)
}
