package devstack_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/devstack"
)

// TestThrowawayCluster exercises the path a fresh machine takes when no PostgreSQL answers:
// a cluster created from the Debian binaries, started, reachable, stopped.
func TestThrowawayCluster(t *testing.T) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	require.NotEmpty(t, bins, "PostgreSQL server binaries are missing: `make test` installs them (make deps)")
	// The server runs as the postgres user when the test runs as root: its directory must be
	// reachable by that user, which t.TempDir (mode 0700) is not.
	dir, err := os.MkdirTemp("", "devstack-pg-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	deps := devstack.Deps{Logger: slog.New(slog.DiscardHandler), StateDir: dir, PostgresPort: port}
	url, stop, err := deps.StartThrowawayCluster(context.Background())
	require.NoError(t, err)
	require.NoError(t, devstack.PingPostgres(context.Background(), url))
	stop()
	require.Error(t, devstack.PingPostgres(context.Background(), url), "stopped")

	// A second start reuses the cluster's data directory.
	url, stop, err = deps.StartThrowawayCluster(context.Background())
	require.NoError(t, err)
	defer stop()
	require.NoError(t, devstack.PingPostgres(context.Background(), url))
}
