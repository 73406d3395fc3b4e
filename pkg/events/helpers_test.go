package events

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
)

// waitFor is how long a test waits for something asynchronous before failing.
const waitFor = 15 * time.Second

// tick is how often a test polls.
const tick = 10 * time.Millisecond

// testLogger writes the package's logs into the test log, so a failing test shows them.
func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}

// startJetStream runs a fresh server with the suite's streams.
func startJetStream(tb testing.TB) (*natstest.Server, jetstream.JetStream) {
	tb.Helper()
	srv := natstest.Start(tb)
	js := srv.JetStream(tb)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(tb, EnsureStreams(ctx, js, StreamsConfig{}))
	return srv, js
}

// testPublisher publishes prepared rows the way the relay does, without a database.
func testPublisher(js jetstream.JetStream) *Relay {
	counter, _ := metricnoop.NewMeterProvider().Meter("test").Int64Counter("published")
	return &Relay{cfg: RelayConfig{JS: js, PublishTimeout: 2 * time.Second}, log: slog.New(slog.DiscardHandler), published: counter}
}

// publishEvent prepares ev as Enqueue would and publishes it as the relay would, retrying
// while the server is away.
func publishEvent(tb testing.TB, ctx context.Context, js jetstream.JetStream, o *Outbox, ev Event) outboxRow {
	tb.Helper()
	row, err := o.prepare(ctx, ev)
	require.NoError(tb, err)
	pub := testPublisher(js)
	require.Eventually(tb, func() bool { return pub.publish(context.Background(), row) == nil }, waitFor, tick)
	return row
}

func newTestOutbox(tb testing.TB, now func() time.Time) *Outbox {
	tb.Helper()
	o, err := NewOutbox(OutboxConfig{Region: owner.USEast, Now: now})
	require.NoError(tb, err)
	return o
}

// waitConsumer waits until Consume has created its durable consumer: with Interest
// retention, a message published before any consumer is interested is not kept.
func waitConsumer(tb testing.TB, js jetstream.JetStream, stream, durable string) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		_, err := js.Consumer(context.Background(), stream, durable)
		return err == nil
	}, waitFor, tick)
}

// metrics collects the counters of a test meter provider.
type metrics struct {
	reader   *sdkmetric.ManualReader
	provider *sdkmetric.MeterProvider
}

func newMetrics() *metrics {
	r := sdkmetric.NewManualReader()
	return &metrics{reader: r, provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))}
}

// sum adds up the counter name over the data points carrying every attribute of want.
func (m *metrics) sum(tb testing.TB, name string, want ...attribute.KeyValue) int64 {
	tb.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(tb, m.reader.Collect(context.Background(), &rm))
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != name {
				continue
			}
			data, ok := mt.Data.(metricdata.Sum[int64])
			require.True(tb, ok, "metric %s is not an int64 sum", name)
		points:
			for _, dp := range data.DataPoints {
				for _, kv := range want {
					if v, ok := dp.Attributes.Value(kv.Key); !ok || v != kv.Value {
						continue points
					}
				}
				total += dp.Value
			}
		}
	}
	return total
}
