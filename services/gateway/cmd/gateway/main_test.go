package main

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunRefusesABadConfiguration(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "nothing set", env: map[string]string{}, want: "FORGE_HTTP_ADDR is required"},
		{name: "development identity provider in a production-looking region", env: map[string]string{
			"FORGE_DEV_MODE": "1", "FORGE_GRPC_ADDR": "127.0.0.1:0", "FORGE_TLS_CERT": "c", "FORGE_TLS_KEY": "k", "FORGE_TLS_CA": "ca",
			"FORGE_HTTP_ADDR": "127.0.0.1:0", "FORGE_EDGE_CERT": "e", "FORGE_EDGE_KEY": "ek", "FORGE_TENANT_ADDR": "127.0.0.1:1",
			"FORGE_CONSOLE_ORIGIN": "https://console.forge.example", "NATS_URL": "nats://127.0.0.1:1",
		}, want: "looks like production"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), []string{"serve"}, func(k string) string { return tt.env[k] }, io.Discard)
			require.ErrorContains(t, err, tt.want)
		})
	}
}
