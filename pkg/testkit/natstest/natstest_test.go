package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// A restarted server comes back on the same URL with its streams and stored messages, and a
// client connected before the shutdown reconnects by itself.
func TestRestartKeepsPortStoreAndClients(t *testing.T) {
	srv := Start(t)
	js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "t.one", []byte("1"))
	require.NoError(t, err)

	url := srv.URL()
	srv.Shutdown()
	down, cancelDown := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelDown()
	_, err = js.Stream(down, "T")
	require.Error(t, err, "the server is down")
	srv.Restart()
	require.Equal(t, url, srv.URL())

	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		s, err := js.Stream(c, "T")
		return err == nil && s.CachedInfo().State.Msgs == 1
	}, 15*time.Second, 10*time.Millisecond, "stream and message survive the restart")
}

// Each test gets its own server: nothing leaks between them.
func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	require.NotEqual(t, a.URL(), b.URL())
	require.NotEqual(t, a.StoreDir(), b.StoreDir())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := a.JetStream(t).CreateStream(ctx, jetstream.StreamConfig{Name: "ONLY_A", Subjects: []string{"a"}})
	require.NoError(t, err)
	_, err = b.JetStream(t).Stream(ctx, "ONLY_A")
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
}
