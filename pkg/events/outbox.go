package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"buf.build/go/protovalidate"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/owner"
)

// ErrNoOwner is returned by Enqueue for an event whose meta names no owner: every event is
// about one tenant, and the outbox row is owner-scoped like every other row.
var ErrNoOwner = errors.New("event has no owner_id")

// ErrInvalidEvent is returned for an event that breaks its contract (protovalidate rules,
// a region other than this instance's, an event type missing from the catalog).
var ErrInvalidEvent = errors.New("invalid event")

// Execer is what Enqueue and MarkProcessed need of the caller's transaction; pgx.Tx and
// the owner transaction of pkg/database satisfy it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// OutboxConfig configures an Outbox.
type OutboxConfig struct {
	// Region is the region this instance serves; it is stamped on every event, and an event
	// claiming another region is refused (a tenant's events are written in its home region).
	Region owner.Region
	// Now is the clock for occur_time; nil means time.Now.
	Now func() time.Time
	// Propagator writes the trace context into the stored headers; nil means W3C trace
	// context and baggage.
	Propagator propagation.TextMapPropagator
	// Validator checks the protovalidate rules of the event; nil builds a default one.
	Validator protovalidate.Validator
}

// Outbox writes events into the outbox table of the caller's transaction.
type Outbox struct {
	region     owner.Region
	now        func() time.Time
	propagator propagation.TextMapPropagator
	validator  protovalidate.Validator
}

// NewOutbox checks cfg and returns an Outbox.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	if !cfg.Region.Valid() {
		return nil, fmt.Errorf("outbox: unknown region %q", cfg.Region)
	}
	o := &Outbox{region: cfg.Region, now: cfg.Now, propagator: cfg.Propagator, validator: cfg.Validator}
	if o.now == nil {
		o.now = time.Now
	}
	if o.propagator == nil {
		o.propagator = defaultPropagator()
	}
	if o.validator == nil {
		v, err := protovalidate.New()
		if err != nil {
			return nil, fmt.Errorf("outbox: validator: %w", err)
		}
		o.validator = v
	}
	return o, nil
}

// insertOutbox writes one event. The owner_id is given explicitly (the code filters by owner
// itself) and RLS checks it against the transaction's owner.
const insertOutbox = `INSERT INTO outbox (owner_id, id, subject, payload, headers) VALUES ($1, $2, $3, $4, $5)`

// Enqueue writes ev into the outbox within tx, the same transaction as the state change it
// announces: if tx rolls back, the event never existed. The caller sets ev.Meta with the
// owner_id; Enqueue fills the rest of the meta in place (event_id, which is also the outbox
// row ID and the Nats-Msg-Id; region; occur_time), validates the event, derives its subject
// from the catalog and stores the current trace context in the headers. It returns the event ID.
func (o *Outbox) Enqueue(ctx context.Context, tx Execer, ev Event) (uuid.UUID, error) {
	row, err := o.prepare(ctx, ev)
	if err != nil {
		return uuid.Nil, err
	}
	if _, err := tx.Exec(ctx, insertOutbox, row.ownerID, row.id, row.subject, row.payload, row.headers); err != nil {
		return uuid.Nil, fmt.Errorf("enqueue %s: insert outbox: %w", row.headers[HeaderEventType], err)
	}
	return row.id, nil
}

// prepare fills and checks ev's meta and builds its outbox row.
func (o *Outbox) prepare(ctx context.Context, ev Event) (outboxRow, error) {
	if ev == nil {
		return outboxRow{}, fmt.Errorf("enqueue: %w: nil event", ErrInvalidEvent)
	}
	name := ev.ProtoReflect().Descriptor().FullName()
	meta := ev.GetMeta()
	if meta == nil || meta.GetOwnerId() == "" {
		return outboxRow{}, fmt.Errorf("enqueue %s: %w", name, ErrNoOwner)
	}
	ownerID, err := owner.Parse(meta.GetOwnerId())
	if err != nil {
		return outboxRow{}, fmt.Errorf("enqueue %s: %w: %w", name, ErrNoOwner, err)
	}
	if ctxOwner, ok := owner.FromContext(ctx); ok {
		// The transaction acts for one tenant; an event about another is a bug upstream
		// (and RLS would refuse the row anyway).
		if ctxOwner.ID != ownerID {
			return outboxRow{}, fmt.Errorf("enqueue %s: %w: owner_id differs from the request's owner", name, ErrInvalidEvent)
		}
		if ctxOwner.HomeRegion != "" && ctxOwner.HomeRegion != o.region {
			return outboxRow{}, fmt.Errorf("enqueue %s: %w: owner is homed in %s, this instance serves %s",
				name, ErrInvalidEvent, ctxOwner.HomeRegion, o.region)
		}
	}
	switch meta.GetRegion() {
	case "":
		meta.Region = o.region.String()
	case o.region.String():
	default:
		return outboxRow{}, fmt.Errorf("enqueue %s: %w: region %q, this instance serves %s",
			name, ErrInvalidEvent, meta.GetRegion(), o.region)
	}
	var id uuid.UUID
	if meta.GetEventId() == "" {
		// Version 7 IDs sort by time, which keeps the outbox primary key index append-mostly.
		if id, err = uuid.NewV7(); err != nil {
			return outboxRow{}, fmt.Errorf("enqueue %s: event id: %w", name, err)
		}
		meta.EventId = id.String()
	} else if id, err = uuid.Parse(meta.GetEventId()); err != nil {
		return outboxRow{}, fmt.Errorf("enqueue %s: %w: event_id: %w", name, ErrInvalidEvent, err)
	}
	if meta.GetOccurTime() == nil {
		meta.OccurTime = timestamppb.New(o.now())
	}
	if err := o.validator.Validate(ev); err != nil {
		return outboxRow{}, fmt.Errorf("enqueue %s: %w: %w", name, ErrInvalidEvent, err)
	}
	subject, _, err := SubjectOf(ev)
	if err != nil {
		return outboxRow{}, fmt.Errorf("enqueue: %w: %w", ErrInvalidEvent, err)
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		return outboxRow{}, fmt.Errorf("enqueue %s: marshal: %w", name, err)
	}
	headers := map[string]string{
		HeaderEventType:   string(name),
		HeaderContentType: ContentTypeProtobuf,
		HeaderOwnerID:     ownerID.String(),
	}
	o.propagator.Inject(ctx, propagation.MapCarrier(headers))
	return outboxRow{id: id, ownerID: ownerID.UUID(), subject: subject, payload: payload, headers: headers}, nil
}
