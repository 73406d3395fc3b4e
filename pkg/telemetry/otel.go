package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Config says how a service reports traces and metrics.
type Config struct {
	// Service is the service name (resource attribute service.name).
	Service string
	// Region is the region the instance serves.
	Region string
	// OTLPEndpoint turns on OTLP/gRPC export of traces and metrics (host:port). Empty means
	// off: spans are still created and propagated, so trace IDs appear in logs.
	OTLPEndpoint string
	// OTLPInsecure sends OTLP without TLS (a local collector sidecar only).
	OTLPInsecure bool
}

// Providers are the tracer and meter providers a service injects into its gRPC stats
// handlers, HTTP middleware and event publishers. Nothing here is installed globally.
type Providers struct {
	Tracer     trace.TracerProvider
	Meter      metric.MeterProvider
	Propagator propagation.TextMapPropagator
	shutdown   []func(context.Context) error
}

// Shutdown flushes and stops the exporters.
func (p *Providers) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range p.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Propagator is the W3C trace-context and baggage propagator every hop uses (gRPC metadata,
// NATS message headers).
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Setup builds the providers for cfg.
func Setup(ctx context.Context, cfg Config) (*Providers, error) {
	res := resource.NewSchemaless(
		semconv.ServiceName(cfg.Service),
		semconv.CloudRegion(cfg.Region),
	)
	p := &Providers{Propagator: Propagator()}
	if cfg.OTLPEndpoint == "" {
		// Spans are sampled and recorded locally so IDs flow into logs, but nothing leaves.
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res))
		p.Tracer = tp
		p.Meter = metricnoop.NewMeterProvider()
		p.shutdown = append(p.shutdown, tp.Shutdown)
		return p, nil
	}

	traceOpts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
	metricOpts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(cfg.OTLPEndpoint)}
	if cfg.OTLPInsecure {
		traceOpts = append(traceOpts, otlptracegrpc.WithInsecure())
		metricOpts = append(metricOpts, otlpmetricgrpc.WithInsecure())
	}
	te, err := otlptracegrpc.New(ctx, traceOpts...)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	me, err := otlpmetricgrpc.New(ctx, metricOpts...)
	if err != nil {
		return nil, fmt.Errorf("otlp metric exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(te))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me, sdkmetric.WithInterval(15*time.Second))))
	p.Tracer, p.Meter = tp, mp
	p.shutdown = append(p.shutdown, tp.Shutdown, mp.Shutdown)
	return p, nil
}
