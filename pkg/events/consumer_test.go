package events

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
)

// runConsume starts Consume in the background and stops it when the test ends.
func runConsume(t *testing.T, js jetstream.JetStream, cfg ConsumerConfig) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Consume(ctx, js, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(waitFor):
			t.Error("Consume did not return after its context ended")
		}
	})
	waitConsumer(t, js, cfg.Stream, cfg.Durable)
}

func appAccessChanged(ownerID owner.ID) *eventsv1.AppAccessChanged {
	return &eventsv1.AppAccessChanged{
		Meta:   &eventsv1.EventMeta{OwnerId: ownerID.String()},
		AppId:  uuid.NewString(),
		Reason: eventsv1.AppAccessChanged_REASON_UNPUBLISHED,
	}
}

func TestConsumeGivesHandlerOwnerAndTraceContext(t *testing.T) {
	_, js := startJetStream(t)
	type seen struct {
		owner   owner.Owner
		ownerOK bool
		span    trace.SpanContext
		d       Delivery
	}
	got := make(chan seen, 4)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "sandbox-origin", Subjects: []string{SubjectAppAccessChanged},
		Handler: func(ctx context.Context, d Delivery) error {
			o, ok := owner.FromContext(ctx)
			got <- seen{owner: o, ownerOK: ok, span: trace.SpanContextFromContext(ctx), d: d}
			return nil
		},
		DeadLetter: func(context.Context, DeadLetter) error { return nil },
	})

	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), parent)
	ownerID := owner.New()
	ev := appAccessChanged(ownerID)
	row := publishEvent(t, ctx, js, newTestOutbox(t, nil), ev)

	select {
	case s := <-got:
		require.True(t, s.ownerOK, "no owner in the handler's context")
		assert.Equal(t, owner.Owner{ID: ownerID, HomeRegion: owner.USEast}, s.owner)
		assert.Equal(t, traceID, s.span.TraceID(), "trace context did not reach the handler")
		assert.True(t, s.span.IsRemote())
		assert.Equal(t, row.id, s.d.EventID)
		assert.Equal(t, "sandbox-origin", s.d.Consumer)
		assert.Equal(t, SubjectAppAccessChanged, s.d.Subject)
		assert.True(t, proto.Equal(ev, s.d.Event), "decoded event differs from the published one")
	case <-time.After(waitFor):
		t.Fatal("handler not called")
	}
	// Acked: nothing pending or waiting on the consumer, and Interest retention removed it.
	require.Eventually(t, func() bool {
		info, err := js.Stream(context.Background(), StreamApps)
		return err == nil && info.CachedInfo().State.Msgs == 0
	}, waitFor, tick)
}

func TestConsumeDeadLettersWhatExhaustsMaxDeliver(t *testing.T) {
	tests := []struct {
		name    string
		handler Handler
	}{
		{"handler error", func(context.Context, Delivery) error { return errors.New("downstream unavailable") }},
		{"handler panic", func(context.Context, Delivery) error { panic("bug") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, js := startJetStream(t)
			m := newMetrics()
			var calls atomic.Int32
			var mu sync.Mutex
			var deliveredAt []time.Time
			letters := make(chan DeadLetter, 4)
			backOff := []time.Duration{20 * time.Millisecond, 80 * time.Millisecond}
			runConsume(t, js, ConsumerConfig{
				Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"},
				MaxDeliver: 3, BackOff: backOff, Meter: m.provider,
				Handler: func(ctx context.Context, d Delivery) error {
					calls.Add(1)
					mu.Lock()
					deliveredAt = append(deliveredAt, time.Now())
					mu.Unlock()
					return tc.handler(ctx, d)
				},
				DeadLetter: func(_ context.Context, dl DeadLetter) error {
					letters <- dl
					return nil
				},
			})
			ownerID := owner.New()
			row := publishEvent(t, context.Background(), js, newTestOutbox(t, nil), appAccessChanged(ownerID))

			var dl DeadLetter
			select {
			case dl = <-letters:
			case <-time.After(waitFor):
				t.Fatal("no dead letter: the message was dropped silently")
			}
			assert.Equal(t, ReasonMaxDeliveries, dl.Reason)
			assert.Equal(t, StreamApps, dl.Stream)
			assert.Equal(t, "svc", dl.Consumer)
			assert.Equal(t, uint64(3), dl.Deliveries)
			assert.False(t, dl.Missing)
			assert.Equal(t, SubjectAppAccessChanged, dl.Subject)
			assert.Equal(t, row.payload, dl.Data, "the dead letter must carry the message itself")
			assert.Equal(t, row.id.String(), dl.EventID)
			assert.Equal(t, ownerID.String(), dl.OwnerID)
			assert.Equal(t, string((&eventsv1.AppAccessChanged{}).ProtoReflect().Descriptor().FullName()), dl.EventType)
			assert.Equal(t, int32(3), calls.Load(), "MaxDeliver bounds the deliveries")

			mu.Lock()
			require.Len(t, deliveredAt, 3)
			// The schedule is a floor: delivery n+1 comes no sooner than BackOff[n-1] after n.
			assert.GreaterOrEqual(t, deliveredAt[1].Sub(deliveredAt[0]), backOff[0])
			assert.GreaterOrEqual(t, deliveredAt[2].Sub(deliveredAt[1]), backOff[1])
			mu.Unlock()

			attrs := []attribute.KeyValue{attribute.String("reason", ReasonMaxDeliveries), attribute.String("consumer", "svc")}
			assert.Equal(t, int64(1), m.sum(t, "forge.events.dead_letters", attrs...))
			assert.Equal(t, int64(3), m.sum(t, "forge.events.consumed", attribute.String("outcome", "nak")))

			// The advisory itself is kept in its stream, and Interest retention kept the message.
			info, err := js.Stream(context.Background(), StreamAdvisories)
			require.NoError(t, err)
			assert.Equal(t, uint64(1), info.CachedInfo().State.Msgs)
			raw, err := (func() (*jetstream.RawStreamMsg, error) {
				s, err := js.Stream(context.Background(), StreamApps)
				if err != nil {
					return nil, err
				}
				return s.GetMsg(context.Background(), 1)
			})()
			require.NoError(t, err)
			assert.Equal(t, row.payload, raw.Data)
			select {
			case extra := <-letters:
				t.Fatalf("second dead letter after ack: %+v", extra)
			default:
			}
		})
	}
}

func TestConsumeDeadLettersUndecodableAndGoesOn(t *testing.T) {
	o := newTestOutbox(t, nil)
	valid := func(t *testing.T) outboxRow {
		row, err := o.prepare(context.Background(), appAccessChanged(owner.New()))
		require.NoError(t, err)
		return row
	}
	tests := []struct {
		name  string
		spoil func(t *testing.T, row *outboxRow)
	}{
		{"unknown event type", func(_ *testing.T, row *outboxRow) { row.headers[HeaderEventType] = "forge.events.v1.Nope" }},
		{"no event type", func(_ *testing.T, row *outboxRow) { delete(row.headers, HeaderEventType) }},
		{"garbage payload", func(_ *testing.T, row *outboxRow) { row.payload = []byte{0xff, 0xff, 0xff} }},
		{"owner header disagrees", func(_ *testing.T, row *outboxRow) { row.headers[HeaderOwnerID] = owner.New().String() }},
		{"wrong content type", func(_ *testing.T, row *outboxRow) { row.headers[HeaderContentType] = "application/json" }},
		{"payload without owner", func(t *testing.T, row *outboxRow) {
			ev := appAccessChanged(owner.New())
			ev.Meta = &eventsv1.EventMeta{EventId: row.id.String(), Region: "us-east"}
			b, err := proto.Marshal(ev)
			require.NoError(t, err)
			row.payload = b
		}},
		{"type on the wrong subject", func(t *testing.T, row *outboxRow) {
			ev := &eventsv1.AppCreated{Meta: &eventsv1.EventMeta{OwnerId: row.headers[HeaderOwnerID]}, AppId: uuid.NewString()}
			r2, err := o.prepare(context.Background(), ev)
			require.NoError(t, err)
			row.payload, row.headers = r2.payload, r2.headers
			row.id = r2.id
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, js := startJetStream(t)
			handled := make(chan Delivery, 4)
			letters := make(chan DeadLetter, 4)
			runConsume(t, js, ConsumerConfig{
				Stream: StreamApps, Durable: "svc", Subjects: []string{"apps.>"},
				Handler:    func(_ context.Context, d Delivery) error { handled <- d; return nil },
				DeadLetter: func(_ context.Context, dl DeadLetter) error { letters <- dl; return nil },
			})
			bad := valid(t)
			tc.spoil(t, &bad)
			pub := testPublisher(js)
			require.NoError(t, pub.publish(context.Background(), bad))
			good := valid(t)
			require.NoError(t, pub.publish(context.Background(), good))

			select {
			case dl := <-letters:
				assert.Equal(t, ReasonUndecodable, dl.Reason)
				assert.Equal(t, uint64(1), dl.StreamSeq)
				assert.Equal(t, bad.payload, dl.Data)
				assert.NotEmpty(t, dl.Detail)
			case <-time.After(waitFor):
				t.Fatal("undecodable message not dead-lettered")
			}
			select {
			case d := <-handled:
				assert.Equal(t, good.id, d.EventID, "the bad message reached the handler")
			case <-time.After(waitFor):
				t.Fatal("the consumer is stuck behind the bad message")
			}
			// Terminated and acked: nothing left in the stream.
			require.Eventually(t, func() bool {
				s, err := js.Stream(context.Background(), StreamApps)
				return err == nil && s.CachedInfo().State.Msgs == 0
			}, waitFor, tick)
		})
	}
}

func TestConsumeSurvivesNATSRestart(t *testing.T) {
	srv, js := startJetStream(t)
	handled := make(chan uuid.UUID, 8)
	runConsume(t, js, ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{SubjectAppAccessChanged},
		Handler:    func(_ context.Context, d Delivery) error { handled <- d.EventID; return nil },
		DeadLetter: func(context.Context, DeadLetter) error { return nil },
	})
	o := newTestOutbox(t, nil)
	expect := func(id uuid.UUID) {
		t.Helper()
		select {
		case got := <-handled:
			require.Equal(t, id, got)
		case <-time.After(waitFor):
			t.Fatal("event not handled")
		}
	}
	expect(publishEvent(t, context.Background(), js, o, appAccessChanged(owner.New())).id)
	srv.Restart()
	expect(publishEvent(t, context.Background(), js, o, appAccessChanged(owner.New())).id)
	srv.Shutdown()
	srv.Restart()
	expect(publishEvent(t, context.Background(), js, o, appAccessChanged(owner.New())).id)
}

func TestConsumerConfigRefusesUnsafeSettings(t *testing.T) {
	ok := ConsumerConfig{
		Stream: StreamApps, Durable: "svc", Subjects: []string{SubjectAppCreated},
		Handler:    func(context.Context, Delivery) error { return nil },
		DeadLetter: func(context.Context, DeadLetter) error { return nil },
	}
	tests := []struct {
		name   string
		change func(c *ConsumerConfig)
	}{
		{"unknown stream", func(c *ConsumerConfig) { c.Stream = "NOPE" }},
		{"subject of another stream", func(c *ConsumerConfig) { c.Subjects = []string{SubjectAccountCreated} }},
		{"no subjects", func(c *ConsumerConfig) { c.Subjects = nil }},
		{"durable with a dot", func(c *ConsumerConfig) { c.Durable = "a.b" }},
		{"empty durable", func(c *ConsumerConfig) { c.Durable = "" }},
		{"no handler", func(c *ConsumerConfig) { c.Handler = nil }},
		{"no dead-letter callback", func(c *ConsumerConfig) { c.DeadLetter = nil }},
		{"backoff longer than max deliver", func(c *ConsumerConfig) {
			c.MaxDeliver, c.BackOff = 1, []time.Duration{time.Second, time.Second}
		}},
		{"negative max deliver", func(c *ConsumerConfig) { c.MaxDeliver = -1 }},
	}
	_, err := ok.complete()
	require.NoError(t, err)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := Consume(context.Background(), nil, c)
			require.Error(t, err)
		})
	}
}

// natsHeaderCarrier must round-trip the lower-case W3C keys exactly (NATS headers are
// case-sensitive).
func TestNATSHeaderCarrierKeepsTraceparentKey(t *testing.T) {
	h := nats.Header{}
	natsHeaderCarrier(h).Set("traceparent", "x")
	assert.Equal(t, "x", h.Get("traceparent"))
	assert.Equal(t, []string{"traceparent"}, natsHeaderCarrier(h).Keys())
}
