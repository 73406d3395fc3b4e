package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamsConfig sets what differs between development and production streams.
type StreamsConfig struct {
	// Replicas is 1 in development and tests, 3 in production (where every server also
	// runs with `sync_interval: always`). 0 means 1.
	Replicas int
	// MaxAge bounds how long an event waits for a consumer that never acks it (a consumer
	// down for that long, or a dead letter nobody stored). 0 means 7 days.
	MaxAge time.Duration
	// Duplicates is the window in which JetStream drops a republished Nats-Msg-Id. It only
	// saves work: a relay that republishes after the window still cannot double an effect,
	// because consumers are idempotent on the event ID (MarkProcessed). 0 means 1 hour.
	Duplicates time.Duration
}

func (c StreamsConfig) complete() (StreamsConfig, error) {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.Duplicates == 0 {
		c.Duplicates = time.Hour
	}
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return c, fmt.Errorf("streams: replicas %d out of range 1..5", c.Replicas)
	case c.MaxAge < 0 || c.Duplicates < 0:
		return c, errors.New("streams: negative duration")
	case c.Duplicates < 100*time.Millisecond:
		return c, errors.New("streams: duplicate window under JetStream's 100ms minimum")
	case c.Duplicates > c.MaxAge:
		return c, errors.New("streams: duplicate window longer than max age")
	}
	return c, nil
}

// StreamConfigs returns the JetStream configuration of every stream of the suite: the event
// streams and the advisory stream that records dead letters.
func StreamConfigs(cfg StreamsConfig) ([]jetstream.StreamConfig, error) {
	cfg, err := cfg.complete()
	if err != nil {
		return nil, err
	}
	var out []jetstream.StreamConfig
	var advisories []string
	for _, s := range Streams() {
		out = append(out, jetstream.StreamConfig{
			Name:        s.Name,
			Description: s.Description,
			Subjects:    s.Subjects,
			Storage:     jetstream.FileStorage,
			// Several services consume the same subjects: a message stays until every
			// consumer interested in it has acked it (or it reaches MaxAge). A message that
			// exhausted its deliveries is kept too, which lets dead-letter handling fetch it.
			Retention:   jetstream.InterestPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      cfg.MaxAge,
			Duplicates:  cfg.Duplicates,
			Replicas:    cfg.Replicas,
			AllowDirect: true,
		})
		advisories = append(advisories, advisoryMaxDeliveriesPrefix+"."+s.Name+".>")
	}
	out = append(out, jetstream.StreamConfig{
		Name:        StreamAdvisories,
		Description: "max-deliveries advisories of the event streams: the dead-letter record",
		Subjects:    advisories,
		Storage:     jetstream.FileStorage,
		// Limits, not Interest: an advisory must stay even when no dead-letter consumer
		// exists yet.
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
		MaxAge:    cfg.MaxAge,
		Replicas:  cfg.Replicas,
	})
	return out, nil
}

// EnsureStreams creates the suite's streams, or updates them to the configuration. Every
// service calls it at start; it is idempotent.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	configs, err := StreamConfigs(cfg)
	if err != nil {
		return err
	}
	for _, sc := range configs {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	// Create the suite's durable consumers that do not exist yet, so that no event is dropped
	// for lack of interest before its consumer first runs (see DurableConsumers). Existing
	// ones are left alone: Consume owns their full configuration.
	for _, d := range DurableConsumers() {
		if _, err := js.Consumer(ctx, d.Stream, d.Durable); err == nil {
			continue
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("ensure consumer %s on %s: %w", d.Durable, d.Stream, err)
		}
		cfg, err := ConsumerConfig{Stream: d.Stream, Durable: d.Durable, Subjects: d.Subjects}.withDefaults()
		if err != nil {
			return err
		}
		if _, err := js.CreateConsumer(ctx, d.Stream, cfg.jsConsumerConfig()); err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
			return fmt.Errorf("ensure consumer %s on %s: %w", d.Durable, d.Stream, err)
		}
	}
	return nil
}
