package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxDeliveriesAdvisory is JetStream's io.nats.jetstream.advisory.v1.max_deliver event.
type maxDeliveriesAdvisory struct {
	Type       string    `json:"type"`
	ID         string    `json:"id"`
	Time       time.Time `json:"timestamp"`
	Stream     string    `json:"stream"`
	Consumer   string    `json:"consumer"`
	StreamSeq  uint64    `json:"stream_seq"`
	Deliveries uint64    `json:"deliveries"`
}

// AdvisorySubject is the subject of the max-deliveries advisory for one consumer.
func AdvisorySubject(stream, durable string) string {
	return advisoryMaxDeliveriesPrefix + "." + stream + "." + durable
}

// deadLetterDurable names the durable consumer, on the advisory stream, that turns one
// event consumer's advisories into dead letters.
func deadLetterDurable(stream, durable string) string {
	return "deadletters_" + stream + "_" + durable
}

// runDeadLetters consumes this consumer's max-deliveries advisories from the advisory stream
// until ctx ends. Because the stream captured them, an advisory raised while this process
// was down is still handled when it comes back.
func (c *consumer) runDeadLetters(ctx context.Context) {
	down := outage{log: c.log, what: "nats dead-letter consume"}
	bo := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for ctx.Err() == nil {
		err := c.pullDeadLetters(ctx, &down, &bo)
		if ctx.Err() != nil {
			return
		}
		down.fail(ctx, err)
		sleepCtx(ctx, bo.next())
	}
}

func (c *consumer) pullDeadLetters(ctx context.Context, down *outage, bo *backoff) error {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, StreamAdvisories, jetstream.ConsumerConfig{
		Durable:       deadLetterDurable(c.cfg.Stream, c.cfg.Durable),
		Description:   "events.Consume dead letters of " + c.cfg.Stream + " > " + c.cfg.Durable,
		FilterSubject: AdvisorySubject(c.cfg.Stream, c.cfg.Durable),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// A dead letter is retried until it is stored; there is nowhere further to fall.
		MaxDeliver:    -1,
		BackOff:       c.cfg.BackOff,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("create dead-letter consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("dead-letter messages: %w", err)
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
				return fmt.Errorf("dead-letter next: %w", err)
			}
			down.fail(ctx, err)
			continue
		}
		down.ok(ctx)
		c.handleAdvisory(ctx, msg)
	}
}

// handleAdvisory fetches the message an advisory points at and hands it to DeadLetter.
func (c *consumer) handleAdvisory(ctx context.Context, msg jetstream.Msg) {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(msg.Data(), &adv); err != nil || adv.StreamSeq == 0 {
		// Not something JetStream sends; it stays in the advisory stream for inspection.
		c.log.ErrorContext(ctx, "events: malformed max-deliveries advisory", "subject", msg.Subject(), "error", err)
		_ = msg.TermWithReason("malformed advisory")
		return
	}
	md, _ := msg.Metadata()
	var delivered uint64 = 1
	if md != nil {
		delivered = md.NumDelivered
	}
	dl := DeadLetter{
		Reason:     ReasonMaxDeliveries,
		Detail:     fmt.Sprintf("handler failed on %d deliveries", adv.Deliveries),
		Stream:     adv.Stream,
		Consumer:   adv.Consumer,
		StreamSeq:  adv.StreamSeq,
		Deliveries: adv.Deliveries,
	}
	raw, err := c.fetch(ctx, adv.Stream, adv.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		dl.Missing = true
	case err != nil:
		c.log.WarnContext(ctx, "events: dead letter fetch failed, will retry", "stream_seq", adv.StreamSeq, "error", err)
		_ = msg.NakWithDelay(c.backOff(delivered))
		return
	default:
		dl.Subject, dl.Header, dl.Data, dl.Stored = raw.Subject, raw.Header, raw.Data, raw.Time
		fillDeadLetterIDs(&dl)
	}
	if err := c.storeDeadLetter(ctx, dl); err != nil {
		_ = msg.NakWithDelay(c.backOff(delivered))
		return
	}
	if err := msg.Ack(); err != nil {
		c.log.WarnContext(ctx, "events: dead-letter ack failed", "stream_seq", adv.StreamSeq, "error", err)
	}
}

func (c *consumer) fetch(ctx context.Context, stream string, seq uint64) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	return s.GetMsg(ctx, seq)
}
