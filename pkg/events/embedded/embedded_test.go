package embedded

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func TestStartServesJetStreamAndLogsThroughSlog(t *testing.T) {
	var logs bytes.Buffer
	s, err := Start(Config{Port: -1, StoreDir: t.TempDir(), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	require.NoError(t, err)
	defer s.Shutdown()
	require.NotZero(t, s.Port())

	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	_, err = js.AccountInfo()
	require.NoError(t, err, "JetStream must be enabled")
	require.Contains(t, logs.String(), `"msg":"nats server"`)
}

func TestStartRefusesMissingStoreDir(t *testing.T) {
	_, err := Start(Config{Port: -1})
	require.Error(t, err)
}

func TestStartListensOnLoopbackByDefault(t *testing.T) {
	s, err := Start(Config{Port: -1, StoreDir: t.TempDir()})
	require.NoError(t, err)
	defer s.Shutdown()
	require.Contains(t, s.ClientURL(), "127.0.0.1")
}
