package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/secret"
	"github.com/forgeapps/backbone/pkg/telemetry"
)

func TestLoggerRedacts(t *testing.T) {
	const canary = "tok-canary-93f1"
	tests := []struct {
		name string
		attr slog.Attr
	}{
		{name: "secret type under a neutral key", attr: slog.Any("v", secret.New(canary))},
		{name: "plain string under authorization", attr: slog.String("Authorization", "Bearer "+canary)},
		{name: "plain string under session_token", attr: slog.String("session_token", canary)},
		{name: "cookie", attr: slog.String("cookie", "__Host-session="+canary)},
		{name: "nested group", attr: slog.Group("req", slog.String("api_key", canary))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := telemetry.NewLogger(&buf, "test", slog.LevelDebug)
			l.Info("request", tt.attr)
			require.NotContains(t, buf.String(), canary)
			require.Contains(t, buf.String(), secret.Redacted)
		})
	}
}

func TestLoggerAddsTraceIDs(t *testing.T) {
	p, err := telemetry.Setup(context.Background(), telemetry.Config{Service: "test", Region: "us-east"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })

	ctx, span := p.Tracer.Tracer("t").Start(context.Background(), "op")
	defer span.End()

	var buf bytes.Buffer
	telemetry.NewLogger(&buf, "test", slog.LevelInfo).InfoContext(ctx, "hello")
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	require.Equal(t, span.SpanContext().TraceID().String(), line["trace_id"])
	require.Equal(t, "test", line["service"])
}

func TestParseLevel(t *testing.T) {
	require.Equal(t, slog.LevelDebug, telemetry.ParseLevel("debug"))
	require.Equal(t, slog.LevelWarn, telemetry.ParseLevel("WARN"))
	require.Equal(t, slog.LevelInfo, telemetry.ParseLevel("nonsense"))
}
