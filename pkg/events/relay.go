package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/forgeapps/backbone/pkg/database"
)

// RelayDB is what the relay needs of the service's runtime pool; *database.DB has it. The
// relay runs in a system transaction (no owner): it reaches outbox rows only through the
// reviewed SECURITY DEFINER functions outbox_claim and outbox_delete.
type RelayDB interface {
	SystemTx(ctx context.Context, fn func(ctx context.Context, tx database.Tx) error) error
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	DB RelayDB
	JS jetstream.JetStream
	// ListenURL is the runtime role's Postgres URL (DATABASE_URL). The relay keeps one
	// connection of its own on it to LISTEN for committed outbox rows and publish them at once;
	// empty means polling only.
	ListenURL string
	// Batch is how many rows one transaction claims; 0 means 100.
	Batch int
	// PollInterval is how often the relay looks for rows when no notification arrives
	// (notifications wake it at once); 0 means 250ms.
	PollInterval time.Duration
	// PublishTimeout bounds the wait for one PubAck; 0 means 5s.
	PublishTimeout time.Duration
	// MaxBackoff caps the wait between retries while NATS or Postgres is down; 0 means 5s.
	MaxBackoff time.Duration
	Logger     *slog.Logger         // nil discards
	Meter      metric.MeterProvider // nil means no metrics
}

// Relay publishes committed outbox rows to JetStream. Every service that enqueues events
// runs one (or several: replicas never publish the same row at once, since rows are claimed
// with FOR UPDATE SKIP LOCKED).
type Relay struct {
	cfg       RelayConfig
	log       *slog.Logger
	published metric.Int64Counter
	// unpublishable remembers rows found impossible to publish: each is logged once, and
	// later claims pass over them so they cannot hold up the rows behind them. Only Run's
	// goroutine touches it.
	unpublishable map[uuid.UUID]bool
}

// NewRelay checks cfg and returns a Relay.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.DB == nil || cfg.JS == nil {
		return nil, errors.New("relay: DB and JS are required")
	}
	if cfg.Batch == 0 {
		cfg.Batch = 100
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Batch < 1 || cfg.Batch > 1000 || cfg.PollInterval < 0 || cfg.PublishTimeout < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("relay: Batch must be 1..1000 and durations positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Meter == nil {
		cfg.Meter = metricnoop.NewMeterProvider()
	}
	r := &Relay{cfg: cfg, log: cfg.Logger.With("component", "outbox-relay"), unpublishable: map[uuid.UUID]bool{}}
	var err error
	r.published, err = cfg.Meter.Meter("github.com/forgeapps/backbone/pkg/events").Int64Counter(
		"forge.events.relay.published",
		metric.WithDescription("Outbox rows published to JetStream; duplicate=true when JetStream dropped a republish."))
	if err != nil {
		return nil, fmt.Errorf("relay: metric: %w", err)
	}
	return r, nil
}

// Run relays until ctx ends, then returns nil; call it once per Relay (run more Relays for
// more replicas). It never returns on a transient error: while NATS or Postgres is down it
// retries with backoff, logging once when the outage starts and once when it ends.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	listenDone := make(chan struct{})
	go func() {
		defer close(listenDone)
		r.listen(ctx, wake)
	}()
	defer func() { <-listenDone }()

	down := outage{log: r.log, what: "outbox relay"}
	bo := backoff{min: 50 * time.Millisecond, max: r.cfg.MaxBackoff}
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		n, err := r.relayBatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			down.fail(ctx, err)
			if !sleepCtx(ctx, bo.next()) {
				return nil
			}
			continue
		}
		down.ok(ctx)
		bo.reset()
		if n == r.cfg.Batch {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
	}
}

const (
	claimOutbox  = `SELECT id, owner_id, subject, payload, headers FROM outbox_claim($1, $2)`
	deleteOutbox = `SELECT outbox_delete($1)`
)

type outboxRow struct {
	id      uuid.UUID
	ownerID uuid.UUID
	subject string
	payload []byte
	headers map[string]string
}

// relayBatch claims up to Batch rows, publishes them in order and deletes the published
// ones, all in one transaction: the claim's row locks keep other replicas off these rows
// until the deletes commit. It returns how many rows it claimed.
func (r *Relay) relayBatch(ctx context.Context) (int, error) {
	var claimed int
	var pubErr error
	err := r.cfg.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		claimed, pubErr = 0, nil // SystemTx may run fn again after a serialization failure
		skip := make([]string, 0, len(r.unpublishable))
		for id := range r.unpublishable {
			skip = append(skip, id.String())
		}
		rows, err := tx.Query(ctx, claimOutbox, r.cfg.Batch, skip)
		if err != nil {
			return fmt.Errorf("postgres claim: %w", err)
		}
		var batch []outboxRow
		for rows.Next() {
			var row outboxRow
			if err := rows.Scan(&row.id, &row.ownerID, &row.subject, &row.payload, &row.headers); err != nil {
				rows.Close()
				return fmt.Errorf("postgres claim scan: %w", err)
			}
			batch = append(batch, row)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres claim: %w", err)
		}
		claimed = len(batch)

		var done []string
		for _, row := range batch {
			if err := r.publish(ctx, row); err != nil {
				var perm permanentError
				if errors.As(err, &perm) {
					// A row nothing can publish (its subject belongs to no stream) stays in
					// the outbox, visible, without holding up the rows behind it.
					if !r.unpublishable[row.id] && len(r.unpublishable) < 10000 {
						r.unpublishable[row.id] = true
						r.log.ErrorContext(ctx, "events: outbox row cannot be published", "event_id", row.id,
							"owner_id", row.ownerID, "subject", row.subject, "error", err)
					}
					continue
				}
				pubErr = err
				break // NATS is likely down: keep the rest, in order, for the next attempt
			}
			done = append(done, row.id.String())
		}
		if len(done) == 0 {
			return nil
		}
		// If this fails the rows stay and are published again: JetStream drops the
		// duplicates inside its window, and consumers' inboxes drop them after it.
		if _, err := tx.Exec(ctx, deleteOutbox, done); err != nil {
			return fmt.Errorf("postgres delete published: %w", err)
		}
		return nil
	})
	if err != nil {
		return claimed, errors.Join(pubErr, err)
	}
	return claimed, pubErr
}

type permanentError struct{ error }

// publish sends one row and waits for JetStream to store it.
func (r *Relay) publish(ctx context.Context, row outboxRow) error {
	stream, ok := streamOfSubject(row.subject)
	if !ok {
		return permanentError{fmt.Errorf("subject %q belongs to no stream", row.subject)}
	}
	msg := row.message()
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	ack, err := r.cfg.JS.PublishMsg(pctx, msg,
		jetstream.WithMsgID(row.id.String()),
		// A stream that lost its subjects would otherwise let the row vanish into no stream.
		jetstream.WithExpectStream(stream))
	if err != nil {
		return fmt.Errorf("nats publish %s: %w", row.subject, err)
	}
	r.published.Add(ctx, 1, metric.WithAttributes(attribute.String("stream", ack.Stream),
		attribute.Bool("duplicate", ack.Duplicate)))
	return nil
}

// message is the NATS message of an outbox row (without Nats-Msg-Id, which is a publish
// option).
func (row outboxRow) message() *nats.Msg {
	msg := &nats.Msg{Subject: row.subject, Data: row.payload, Header: nats.Header{}}
	for k, v := range row.headers {
		msg.Header.Set(k, v)
	}
	return msg
}
