package edge_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkEdgeRead is the edge's own cost on an authenticated read (a cache hit) in front of
// the scripted tenant, for profiling the edge; the measurement against the real tenant
// service is integration.BenchmarkAuthenticatedRead.
func BenchmarkEdgeRead(b *testing.B) {
	f := newFixture(b, options{})
	token, _ := f.signIn("bench@example.com")
	client := f.client
	get := func() {
		r, err := http.NewRequestWithContext(context.Background(), http.MethodGet, f.url+"/v1/account", nil)
		require.NoError(b, err)
		r.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(r)
		require.NoError(b, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(b, http.StatusOK, resp.StatusCode)
	}
	get()
	b.ResetTimer()
	for range b.N {
		get()
	}
}
