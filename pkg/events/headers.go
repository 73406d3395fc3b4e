package events

import (
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// Message headers every event carries (besides Nats-Msg-Id, set by the relay to the event ID).
const (
	// HeaderEventType holds the protobuf full name of the payload (forge.events.v1.AppCreated).
	HeaderEventType = "Forge-Event-Type"
	// HeaderOwnerID holds the owner_id of the event; a consumer refuses a message whose
	// header and payload disagree.
	HeaderOwnerID = "Forge-Owner-Id"
	// HeaderContentType holds ContentTypeProtobuf.
	HeaderContentType = "Content-Type"
	// ContentTypeProtobuf says the payload is the binary protobuf encoding.
	ContentTypeProtobuf = "application/protobuf"
)

// defaultPropagator is the W3C trace-context and baggage propagator, the same one
// pkg/telemetry gives services; used when a config leaves Propagator nil.
func defaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// natsHeaderCarrier lets the OpenTelemetry propagator read and write NATS headers. NATS
// header keys are case-sensitive, and traceparent is written and read in lower case.
type natsHeaderCarrier nats.Header

func (c natsHeaderCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c natsHeaderCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c natsHeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
