// Package telemetry sets up what each service reports about itself: JSON logs through
// log/slog carrying the trace and span IDs of the request, OpenTelemetry traces and metrics
// (exported over OTLP only when an endpoint is configured; off by default), and the rule that
// secrets never reach any of them.
//
// Nothing here is global: NewLogger and Setup return values that main injects, so tests can
// capture logs and spans of one server without touching process-wide state.
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/forgeapps/backbone/pkg/secret"
)

// sensitiveKeys are attribute keys whose values are redacted whatever their type: a token or
// cookie that was logged as a plain string by mistake still prints REDACTED.
var sensitiveKeys = []string{
	"authorization", "cookie", "password", "passwd", "secret", "token", "api_key", "apikey",
	"private_key", "plaintext", "credential",
}

// IsSensitiveKey reports whether an attribute, header or field name must never be logged with
// its value.
func IsSensitiveKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range sensitiveKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// NewLogger returns a JSON logger writing to w, tagged with the service name, that adds
// trace_id and span_id from the context and redacts sensitive attributes.
func NewLogger(w io.Writer, service string, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if IsSensitiveKey(a.Key) {
				return slog.String(a.Key, secret.Redacted)
			}
			return a
		},
	})
	return slog.New(traceHandler{Handler: h}).With(slog.String("service", service))
}

// ParseLevel reads a level name ("debug", "info", "warn", "error"); unknown names are info.
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// traceHandler adds the IDs of the span in the record's context.
type traceHandler struct {
	slog.Handler
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{Handler: h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{Handler: h.Handler.WithGroup(name)}
}
