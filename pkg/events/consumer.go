package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"buf.build/go/protovalidate"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/forgeapps/backbone/pkg/owner"
)

// Delivery is one decoded, validated event handed to a Handler.
type Delivery struct {
	// Event is the decoded message, e.g. *eventsv1.AppAccessChanged; switch on its type.
	Event Event
	// Type is the event's catalog row.
	Type EventType
	// EventID is meta.event_id: the idempotency key (see MarkProcessed).
	EventID uuid.UUID
	// Owner is the tenant the event is about (meta.owner_id and meta.region).
	Owner owner.Owner
	// Subject, Stream, Consumer and StreamSeq say where the message came from.
	Subject   string
	Stream    string
	Consumer  string
	StreamSeq uint64
	// NumDelivered counts deliveries of this message to this consumer, this one included.
	NumDelivered uint64
}

// Handler applies one event. It runs with the event's owner (owner.FromContext) and trace
// context in ctx. Returning nil acks the message; an error redelivers it later, up to
// MaxDeliver times. A handler must be idempotent: use MarkProcessed in its transaction.
type Handler func(ctx context.Context, d Delivery) error

// DeadLetterFunc stores a message that will not be handled (it exhausted its deliveries, or
// it cannot be decoded) somewhere a person or a repair job can see it. It may be called more
// than once for the same message (key on Stream, Consumer and StreamSeq); an error makes
// Consume try again later.
type DeadLetterFunc func(ctx context.Context, dl DeadLetter) error

// Dead-letter reasons.
const (
	// ReasonMaxDeliveries: the handler failed on every one of MaxDeliver deliveries.
	ReasonMaxDeliveries = "max_deliveries"
	// ReasonUndecodable: the message is not a valid catalog event; no retry can fix it.
	ReasonUndecodable = "undecodable"
)

// DeadLetter is a message that exhausted its deliveries or could not be decoded.
type DeadLetter struct {
	Reason string
	// Detail says why (the decode or validation error for ReasonUndecodable).
	Detail     string
	Stream     string
	Consumer   string
	StreamSeq  uint64
	Deliveries uint64
	// Subject, Header, Data and Stored are the message as the stream holds it. Missing is
	// set when the stream no longer has it (it outlived the stream's MaxAge).
	Subject string
	Header  nats.Header
	Data    []byte
	Stored  time.Time
	Missing bool
	// EventType, EventID and OwnerID are read from the headers and the payload when possible.
	EventType string
	EventID   string
	OwnerID   string
}

// ConsumerConfig configures Consume.
type ConsumerConfig struct {
	// Stream is the stream to consume (StreamTenant, StreamApps, StreamLifecycle).
	Stream string
	// Durable is the consumer's durable name, unique per stream: usually the service name.
	// It is also the inbox key of MarkProcessed.
	Durable string
	// Subjects filters the stream (SubjectAppAccessChanged, ...); at least one.
	Subjects []string
	// MaxDeliver bounds deliveries of one message; 0 means 8.
	MaxDeliver int
	// BackOff is the redelivery schedule: entry i is the ack wait of delivery i+1 and the
	// least delay before redelivering after it failed; the last entry repeats. 0 entries
	// means 5s, 30s, 2m, 10m, 30m, 1h. It may not have more entries than MaxDeliver.
	BackOff []time.Duration
	// HandlerTimeout bounds one handler call; 0 means 1 minute. The message is kept from
	// redelivery (InProgress) while the handler runs.
	HandlerTimeout time.Duration
	// Handler applies each event. Required.
	Handler Handler
	// DeadLetter receives what will not be handled. Required: nothing is dropped silently.
	// Services pass RecordDeadLetter (bound to their database), which keeps it in their
	// event_dead_letters table.
	DeadLetter DeadLetterFunc

	Logger     *slog.Logger                  // nil discards
	Meter      metric.MeterProvider          // nil means no metrics
	Tracer     trace.TracerProvider          // nil: no consumer span, the remote parent is still in ctx
	Propagator propagation.TextMapPropagator // nil means W3C trace context and baggage
	Validator  protovalidate.Validator       // nil builds a default one
}

// durableName is what JetStream accepts as a durable name and what may sit in an advisory
// subject token.
var durableName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// withDefaults fills the redelivery settings, the part of the configuration JetStream keeps.
func (c ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 8
	}
	if len(c.BackOff) == 0 {
		c.BackOff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute,
			10 * time.Minute, 30 * time.Minute, time.Hour}
	}
	return c, nil
}

func (c ConsumerConfig) complete() (ConsumerConfig, error) {
	c, _ = c.withDefaults()
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Meter == nil {
		c.Meter = metricnoop.NewMeterProvider()
	}
	if c.Propagator == nil {
		c.Propagator = defaultPropagator()
	}
	if c.Validator == nil {
		v, err := protovalidate.New()
		if err != nil {
			return c, fmt.Errorf("consumer: validator: %w", err)
		}
		c.Validator = v
	}
	known := false
	for _, s := range Streams() {
		known = known || s.Name == c.Stream
	}
	switch {
	case !known:
		return c, fmt.Errorf("consumer: unknown stream %q", c.Stream)
	case !durableName.MatchString(c.Durable):
		return c, fmt.Errorf("consumer: durable name %q: want [A-Za-z0-9_-]{1,64}", c.Durable)
	case len(c.Subjects) == 0:
		return c, errors.New("consumer: no subjects")
	case c.MaxDeliver < 1:
		return c, fmt.Errorf("consumer: MaxDeliver %d < 1", c.MaxDeliver)
	case len(c.BackOff) > c.MaxDeliver:
		return c, errors.New("consumer: more BackOff entries than MaxDeliver")
	case c.Handler == nil:
		return c, errors.New("consumer: nil Handler")
	case c.DeadLetter == nil:
		return c, errors.New("consumer: nil DeadLetter")
	}
	for _, d := range c.BackOff {
		if d <= 0 {
			return c, errors.New("consumer: BackOff entries must be positive")
		}
	}
	for _, s := range c.Subjects {
		if stream, ok := streamOfSubject(s); !ok || stream != c.Stream {
			return c, fmt.Errorf("consumer: subject %q is not stored by stream %s", s, c.Stream)
		}
	}
	return c, nil
}

// jsConsumerConfig is the durable pull consumer JetStream keeps for cfg.
func (c ConsumerConfig) jsConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        c.Durable,
		Description:    "events.Consume",
		FilterSubjects: c.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		MaxDeliver:     c.MaxDeliver,
		BackOff:        c.BackOff,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
}

// consumer is one running Consume.
type consumer struct {
	cfg        ConsumerConfig
	js         jetstream.JetStream
	log        *slog.Logger
	tracer     trace.Tracer
	handled    metric.Int64Counter
	deadLetter metric.Int64Counter
	attrs      attribute.Set
}

// Consume runs a durable pull consumer until ctx ends, calling cfg.Handler for each event
// and cfg.DeadLetter for what will not be handled. It survives NATS restarts (it retries
// with backoff and logs once per outage); it returns nil when ctx ends, or an error for an
// invalid configuration. Running it several times with the same config shares the work.
func Consume(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig) error {
	if js == nil {
		return errors.New("consumer: nil JetStream")
	}
	cfg, err := cfg.complete()
	if err != nil {
		return err
	}
	c := &consumer{cfg: cfg, js: js, attrs: attribute.NewSet(
		attribute.String("stream", cfg.Stream), attribute.String("consumer", cfg.Durable))}
	c.log = cfg.Logger.With("stream", cfg.Stream, "consumer", cfg.Durable)
	if cfg.Tracer != nil {
		c.tracer = cfg.Tracer.Tracer("github.com/forgeapps/backbone/pkg/events")
	}
	meter := cfg.Meter.Meter("github.com/forgeapps/backbone/pkg/events")
	if c.handled, err = meter.Int64Counter("forge.events.consumed",
		metric.WithDescription("Event deliveries handled, by outcome (ack, nak, term).")); err != nil {
		return fmt.Errorf("consumer: metric: %w", err)
	}
	if c.deadLetter, err = meter.Int64Counter("forge.events.dead_letters",
		metric.WithDescription("Events that will not be handled (max deliveries, undecodable), by reason.")); err != nil {
		return fmt.Errorf("consumer: metric: %w", err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		c.runDeadLetters(ctx)
	}()
	c.runEvents(ctx)
	<-done
	return nil
}

// runEvents (re)creates the durable consumer and pulls from it until ctx ends.
func (c *consumer) runEvents(ctx context.Context) {
	down := outage{log: c.log, what: "nats consume"}
	bo := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for ctx.Err() == nil {
		err := c.pull(ctx, &down, &bo)
		if ctx.Err() != nil {
			return
		}
		down.fail(ctx, err)
		sleepCtx(ctx, bo.next())
	}
}

// pull runs one Messages iterator; it returns when the iterator cannot go on.
func (c *consumer) pull(ctx context.Context, down *outage, bo *backoff) error {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, c.cfg.jsConsumerConfig())
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	// One message at a time: a prefetched message's ack wait runs while it sits in the
	// buffer, and a slow handler would let it expire and count a delivery never attempted.
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	defer it.Stop()
	down.ok(ctx)
	bo.reset()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, jetstream.ErrConsumerNotFound) {
				return fmt.Errorf("next: %w", err)
			}
			// Heartbeat misses and the like while NATS restarts: the iterator recovers.
			down.fail(ctx, err)
			continue
		}
		down.ok(ctx)
		c.handle(ctx, msg)
	}
}

// handle decodes, dispatches and settles one message.
func (c *consumer) handle(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery at all; nothing to ack.
		c.log.ErrorContext(ctx, "events: message without jetstream metadata", "subject", msg.Subject(), "error", err)
		return
	}
	d, err := c.decode(msg, md)
	if err != nil {
		c.poison(ctx, msg, md, err)
		return
	}

	hctx := c.cfg.Propagator.Extract(ctx, natsHeaderCarrier(msg.Headers()))
	hctx = owner.NewContext(hctx, d.Owner)
	if c.tracer != nil {
		var span trace.Span
		hctx, span = c.tracer.Start(hctx, "events.consume "+d.Subject, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.system", "nats"),
				attribute.String("messaging.destination.name", d.Subject),
				attribute.String("messaging.message.id", d.EventID.String())))
		defer span.End()
	}
	hctx, cancel := context.WithTimeout(hctx, c.cfg.HandlerTimeout)
	stopKeepAlive := c.keepAlive(msg, md.NumDelivered)
	err = c.call(hctx, d)
	stopKeepAlive()
	cancel()

	if err == nil {
		if aerr := msg.Ack(); aerr != nil {
			// The effect is recorded; a redelivery will find it in the inbox.
			c.log.WarnContext(ctx, "events: ack failed", "subject", d.Subject, "event_id", d.EventID, "error", aerr)
		}
		c.count(ctx, c.handled, "outcome", "ack")
		return
	}
	delay := c.backOff(md.NumDelivered)
	c.log.WarnContext(ctx, "events: handler failed, will redeliver", "subject", d.Subject, "event_id", d.EventID,
		"owner_id", d.Owner.ID, "delivery", md.NumDelivered, "max_deliver", c.cfg.MaxDeliver, "error", err)
	// With a BackOff schedule the server waits at least this long before the next delivery.
	if nerr := msg.NakWithDelay(delay); nerr != nil {
		c.log.WarnContext(ctx, "events: nak failed", "subject", d.Subject, "event_id", d.EventID, "error", nerr)
	}
	c.count(ctx, c.handled, "outcome", "nak")
}

// call runs the handler, turning a panic into an error so one bad event cannot kill the
// consumer (it goes the redelivery and dead-letter way instead).
func (c *consumer) call(ctx context.Context, d Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return c.cfg.Handler(ctx, d)
}

// backOff is the schedule's delay after the given delivery.
func (c *consumer) backOff(delivered uint64) time.Duration {
	i := int(delivered) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(c.cfg.BackOff) {
		i = len(c.cfg.BackOff) - 1
	}
	return c.cfg.BackOff[i]
}

// keepAlive tells the server the message is being worked on, at half its ack wait, so a
// handler slower than the ack wait is not delivered a second time concurrently.
func (c *consumer) keepAlive(msg jetstream.Msg, delivered uint64) (stop func()) {
	every := max(c.backOff(delivered)/2, 5*time.Millisecond)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress() // best effort: a miss only risks a redelivery
			}
		}
	}()
	return func() { close(done); <-finished }
}

// decode turns a message into a Delivery, or says why it is not a valid event.
func (c *consumer) decode(msg jetstream.Msg, md *jetstream.MsgMetadata) (Delivery, error) {
	h := msg.Headers()
	name := h.Get(HeaderEventType)
	t, ok := LookupType(protoreflect.FullName(name))
	if !ok {
		return Delivery{}, fmt.Errorf("event type %q: not in the catalog", name)
	}
	if ct := h.Get(HeaderContentType); ct != ContentTypeProtobuf {
		return Delivery{}, fmt.Errorf("content type %q: want %s", ct, ContentTypeProtobuf)
	}
	ev := t.New()
	if err := proto.Unmarshal(msg.Data(), ev); err != nil {
		return Delivery{}, fmt.Errorf("unmarshal %s: %w", name, err)
	}
	if err := c.cfg.Validator.Validate(ev); err != nil {
		return Delivery{}, fmt.Errorf("validate %s: %w", name, err)
	}
	meta := ev.GetMeta()
	ownerID, err := owner.Parse(meta.GetOwnerId())
	if err != nil {
		return Delivery{}, fmt.Errorf("%s: %w", name, err)
	}
	if hdr := h.Get(HeaderOwnerID); hdr != ownerID.String() {
		return Delivery{}, fmt.Errorf("%s: owner header %q disagrees with the payload", name, hdr)
	}
	region, err := owner.ParseRegion(meta.GetRegion())
	if err != nil {
		return Delivery{}, fmt.Errorf("%s: %w", name, err)
	}
	eventID, err := uuid.Parse(meta.GetEventId())
	if err != nil {
		return Delivery{}, fmt.Errorf("%s: event_id: %w", name, err)
	}
	if msgID := h.Get(jetstream.MsgIDHeader); msgID != "" && msgID != eventID.String() {
		return Delivery{}, fmt.Errorf("%s: Nats-Msg-Id %q disagrees with event_id", name, msgID)
	}
	subject, _, err := SubjectOf(ev)
	if err != nil {
		return Delivery{}, err
	}
	if subject != msg.Subject() {
		return Delivery{}, fmt.Errorf("%s: published on %q, the catalog says %q", name, msg.Subject(), subject)
	}
	return Delivery{
		Event:        ev,
		Type:         t,
		EventID:      eventID,
		Owner:        owner.Owner{ID: ownerID, HomeRegion: region},
		Subject:      msg.Subject(),
		Stream:       md.Stream,
		Consumer:     c.cfg.Durable,
		StreamSeq:    md.Sequence.Stream,
		NumDelivered: md.NumDelivered,
	}, nil
}

// poison dead-letters a message that can never be handled, then terminates it. If the
// dead letter cannot be stored, the message is redelivered instead, so it is never lost:
// in the end it exhausts MaxDeliver and comes back through the advisory.
func (c *consumer) poison(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, cause error) {
	dl := DeadLetter{
		Reason:     ReasonUndecodable,
		Detail:     cause.Error(),
		Stream:     md.Stream,
		Consumer:   c.cfg.Durable,
		StreamSeq:  md.Sequence.Stream,
		Deliveries: md.NumDelivered,
		Subject:    msg.Subject(),
		Header:     msg.Headers(),
		Data:       msg.Data(),
		Stored:     md.Timestamp,
	}
	fillDeadLetterIDs(&dl)
	if err := c.storeDeadLetter(ctx, dl); err != nil {
		_ = msg.NakWithDelay(c.backOff(md.NumDelivered))
		c.count(ctx, c.handled, "outcome", "nak")
		return
	}
	if err := msg.TermWithReason(ReasonUndecodable); err != nil {
		c.log.WarnContext(ctx, "events: term failed", "subject", msg.Subject(), "error", err)
	}
	c.count(ctx, c.handled, "outcome", "term")
}

// storeDeadLetter logs, counts and hands over one dead letter.
func (c *consumer) storeDeadLetter(ctx context.Context, dl DeadLetter) error {
	c.log.ErrorContext(ctx, "events: dead letter", "reason", dl.Reason, "detail", dl.Detail,
		"subject", dl.Subject, "stream_seq", dl.StreamSeq, "deliveries", dl.Deliveries,
		"event_type", dl.EventType, "event_id", dl.EventID, "owner_id", dl.OwnerID, "missing", dl.Missing)
	c.count(ctx, c.deadLetter, "reason", dl.Reason)
	if err := c.cfg.DeadLetter(ctx, dl); err != nil {
		c.log.ErrorContext(ctx, "events: dead letter not stored, will retry", "subject", dl.Subject,
			"stream_seq", dl.StreamSeq, "error", err)
		return err
	}
	return nil
}

func (c *consumer) count(ctx context.Context, ctr metric.Int64Counter, key, value string) {
	ctr.Add(ctx, 1, metric.WithAttributeSet(c.attrs), metric.WithAttributes(attribute.String(key, value)))
}

// fillDeadLetterIDs reads what it can identify the event by, without trusting it.
func fillDeadLetterIDs(dl *DeadLetter) {
	dl.EventType = dl.Header.Get(HeaderEventType)
	dl.OwnerID = dl.Header.Get(HeaderOwnerID)
	dl.EventID = dl.Header.Get(jetstream.MsgIDHeader)
	if t, ok := LookupType(protoreflect.FullName(dl.EventType)); ok {
		ev := t.New()
		if proto.Unmarshal(dl.Data, ev) == nil && ev.GetMeta() != nil {
			if id := ev.GetMeta().GetEventId(); id != "" {
				dl.EventID = id
			}
			if o := ev.GetMeta().GetOwnerId(); o != "" {
				dl.OwnerID = o
			}
		}
	}
}
