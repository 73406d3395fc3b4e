package service_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/service"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestLoadBase(t *testing.T) {
	full := map[string]string{
		"FORGE_GRPC_ADDR": "127.0.0.1:9101", "FORGE_TLS_CERT": "c", "FORGE_TLS_KEY": "k", "FORGE_TLS_CA": "ca",
		"DATABASE_URL": "postgres://app:pw@db/x", "FORGE_REGION": "eu-west",
	}
	b, err := service.LoadBase("tenant", env(full))
	require.NoError(t, err)
	require.NoError(t, b.CheckServe())
	require.Equal(t, "eu-west", b.Region.String())
	require.Equal(t, "postgres://app:pw@db/x", b.DatabaseURL.Reveal())

	// A migration job has no listen address or certificate: loading works, serving does not.
	b, err = service.LoadBase("tenant", env(map[string]string{"MIGRATION_DATABASE_URL": "postgres://m@db/x"}))
	require.NoError(t, err)
	require.ErrorContains(t, b.CheckServe(), "FORGE_GRPC_ADDR, FORGE_TLS_CA, FORGE_TLS_CERT, FORGE_TLS_KEY")

	_, err = service.LoadBase("tenant", env(map[string]string{"FORGE_REGION": "mars"}))
	require.ErrorContains(t, err, "FORGE_REGION")
	_, err = service.LoadBase("tenant", env(map[string]string{"FORGE_SHUTDOWN_GRACE": "soon"}))
	require.ErrorContains(t, err, "FORGE_SHUTDOWN_GRACE")
}

func TestBaseLogValueHidesURLs(t *testing.T) {
	b, err := service.LoadBase("tenant", env(map[string]string{"DATABASE_URL": "postgres://app:hunter2@db/x"}))
	require.NoError(t, err)
	require.NotContains(t, b.LogValue().String(), "hunter2")
}
