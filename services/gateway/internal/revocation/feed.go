// Package revocation keeps this gateway replica's credential cache honest: it consumes
// tenant.sessions.revoked and tenant.account.status_changed with an ephemeral, per-process
// JetStream consumer (ordered, deliver-new: a replica only cares about what happens while it
// runs, so nothing is durable and nothing is listed in events.DurableConsumers) and drops the
// sessions and tenants they name.
//
// It is also the cache's Feed: the cache serves entries only while the consumer runs on a
// connected client, and only entries stored since the last disruption, so an event missed
// during a NATS outage can never leave a revoked session cached.
package revocation

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Dropper forgets cached credentials.
type Dropper interface {
	DropSession(sessionID string)
	DropOwner(id owner.ID)
}

// Subjects are the events the feed consumes.
func Subjects() []string {
	return []string{events.SubjectSessionsRevoked, events.SubjectAccountStatusChanged}
}

// Feed is the revocation consumer of one replica.
type Feed struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	logger *slog.Logger

	// epoch moves on every disruption (disconnect, reconnect, consumer error, undecodable
	// event); running says the consumer is consuming.
	epoch   atomic.Uint64
	running atomic.Bool
}

// New returns a feed on nc (js must be built on it).
func New(nc *nats.Conn, js jetstream.JetStream, logger *slog.Logger) *Feed {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{nc: nc, js: js, logger: logger}
}

// State implements auth.Feed.
func (f *Feed) State() (uint64, bool) {
	live := f.running.Load() && f.nc.IsConnected()
	return f.epoch.Load(), live
}

// disrupted invalidates everything cached so far.
func (f *Feed) disrupted() { f.epoch.Add(1) }

// Run consumes until ctx ends, dropping what the events name from d. It retries the consumer
// creation with a backoff while NATS is unreachable (the cache stays off meanwhile).
func (f *Feed) Run(ctx context.Context, d Dropper) error {
	statuses := f.nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	defer f.nc.RemoveStatusListener(statuses)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-statuses:
				if !ok {
					return
				}
				f.disrupted()
			}
		}
	}()

	backoff := 100 * time.Millisecond
	for {
		err := f.consume(ctx, d)
		f.running.Store(false)
		f.disrupted()
		if ctx.Err() != nil {
			return nil
		}
		f.logger.WarnContext(ctx, "revocation feed down, the credential cache is off until it is back", slog.Any("error", err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (f *Feed) consume(ctx context.Context, d Dropper) error {
	cons, err := f.js.OrderedConsumer(ctx, events.StreamTenant, jetstream.OrderedConsumerConfig{
		FilterSubjects: Subjects(),
		// Only what happens from now on matters: anything earlier is already reflected in
		// the tenant service, which every cache miss asks.
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return err
	}
	failed := make(chan error, 1)
	cc, err := cons.Consume(func(msg jetstream.Msg) { f.handle(ctx, msg, d) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// The ordered consumer recreates itself after most errors; whatever it may have
			// missed meanwhile is covered by moving the epoch.
			f.disrupted()
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, nats.ErrConnectionClosed) {
				select {
				case failed <- err:
				default:
				}
			}
		}))
	if err != nil {
		return err
	}
	defer cc.Stop()
	f.disrupted()
	f.running.Store(true)
	f.logger.InfoContext(ctx, "revocation feed consuming", slog.Any("subjects", Subjects()))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-failed:
		return err
	case <-cc.Closed():
		return errors.New("consumer closed")
	}
}

func (f *Feed) handle(ctx context.Context, msg jetstream.Msg, d Dropper) {
	switch msg.Subject() {
	case events.SubjectSessionsRevoked:
		var ev eventsv1.SessionsRevoked
		id, ok := f.decode(ctx, msg, &ev)
		if !ok {
			return
		}
		if ev.GetAll() || len(ev.GetSessionIds()) == 0 {
			d.DropOwner(id)
			return
		}
		for _, s := range ev.GetSessionIds() {
			d.DropSession(s)
		}
	case events.SubjectAccountStatusChanged:
		var ev eventsv1.AccountStatusChanged
		if id, ok := f.decode(ctx, msg, &ev); ok {
			d.DropOwner(id)
		}
	}
}

// decode reads an event; on failure the whole cache is invalidated, since what it named is
// unknown.
func (f *Feed) decode(ctx context.Context, msg jetstream.Msg, ev events.Event) (owner.ID, bool) {
	if err := proto.Unmarshal(msg.Data(), ev); err != nil {
		f.logger.ErrorContext(ctx, "undecodable revocation event, dropping the whole cache",
			slog.String("subject", msg.Subject()), slog.Any("error", err))
		f.disrupted()
		return owner.ID{}, false
	}
	id, err := owner.Parse(ev.GetMeta().GetOwnerId())
	if err != nil {
		f.logger.ErrorContext(ctx, "revocation event without a valid owner, dropping the whole cache",
			slog.String("subject", msg.Subject()))
		f.disrupted()
		return owner.ID{}, false
	}
	return id, true
}
