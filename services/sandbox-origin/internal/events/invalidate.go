// Package events connects the sandbox origin to the suite's events: a per-replica consumer
// that drops cached apps the moment access to them changes (every replica must see every
// invalidation, so it is an ephemeral ordered consumer, not a shared durable one), and the
// durable consumers that record account statuses and purge a tenant's rows.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pkgevents "github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Cache is what the invalidator drops entries from.
type Cache interface {
	Invalidate(app uuid.UUID)
	InvalidateOwner(o owner.ID)
	Flush()
}

// Invalidator runs the per-replica invalidation consumers.
type Invalidator struct {
	JS    jetstream.JetStream
	NATS  *nats.Conn
	Cache Cache
	// RecordStatus stores an announced account status before the owner's apps are dropped, so
	// the refill that follows already sees it. Optional; the durable consumer records it too.
	RecordStatus func(ctx context.Context, o owner.ID, status string, at time.Time) error
	Logger       *slog.Logger

	readyOnce sync.Once
	ready     chan struct{}
	mu        sync.Mutex
}

// invalidationSubjects are the events after which a cached app may no longer be served as it is.
var invalidationSubjects = map[string][]string{
	pkgevents.StreamApps:   {pkgevents.SubjectAppAccessChanged, pkgevents.SubjectAppDeleted},
	pkgevents.StreamTenant: {pkgevents.SubjectAccountStatusChanged},
}

func (i *Invalidator) readyCh() chan struct{} {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.ready == nil {
		i.ready = make(chan struct{})
	}
	return i.ready
}

// Ready is closed once both consumers exist: events published from then on are seen.
func (i *Invalidator) Ready() <-chan struct{} { return i.readyCh() }

// Run consumes until ctx ends.
func (i *Invalidator) Run(ctx context.Context) error {
	if i.Logger == nil {
		i.Logger = slog.New(slog.DiscardHandler)
	}
	ready := i.readyCh()
	var wg sync.WaitGroup
	started := make(chan struct{}, len(invalidationSubjects))
	for stream, subjects := range invalidationSubjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i.consume(ctx, stream, subjects, started)
		}()
	}
	if i.NATS != nil {
		// A disconnection may have hidden events (the consumers' interest lapses while NATS is
		// away): forget everything when the connection comes back.
		status := i.NATS.StatusChanged(nats.CONNECTED)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-status:
					i.Cache.Flush()
				}
			}
		}()
	}
	go func() {
		for range invalidationSubjects {
			select {
			case <-started:
			case <-ctx.Done():
				return
			}
		}
		i.readyOnce.Do(func() { close(ready) })
	}()
	wg.Wait()
	return nil
}

// consume keeps one ordered consumer running; each time it has to be made again, the cache is
// flushed, since events may have passed while there was none.
func (i *Invalidator) consume(ctx context.Context, stream string, subjects []string, started chan<- struct{}) {
	first := true
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		cons, err := i.JS.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: subjects,
			DeliverPolicy:  jetstream.DeliverNewPolicy,
		})
		if err != nil {
			i.Logger.WarnContext(ctx, "invalidation consumer: create failed; retrying", "stream", stream, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		if !first {
			i.Cache.Flush()
		}
		if first {
			started <- struct{}{}
			first = false
		}
		it, err := cons.Messages()
		if err != nil {
			continue
		}
		for {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					break
				}
				continue
			}
			i.handle(ctx, msg)
		}
		it.Stop()
	}
}

// handle applies one event. A message that cannot be decoded flushes the whole cache: it
// might have been an invalidation.
func (i *Invalidator) handle(ctx context.Context, msg jetstream.Msg) {
	ev, o, err := decode(msg)
	if err != nil {
		i.Logger.WarnContext(ctx, "invalidation consumer: undecodable event; flushing the cache", "subject", msg.Subject(), "error", err)
		i.Cache.Flush()
		return
	}
	switch e := ev.(type) {
	case *eventsv1.AppAccessChanged:
		if app, err := uuid.Parse(e.GetAppId()); err == nil {
			i.Cache.Invalidate(app)
		} else {
			i.Cache.InvalidateOwner(o)
		}
	case *eventsv1.AppDeleted:
		if app, err := uuid.Parse(e.GetAppId()); err == nil {
			i.Cache.Invalidate(app)
		} else {
			i.Cache.InvalidateOwner(o)
		}
	case *eventsv1.AccountStatusChanged:
		if i.RecordStatus != nil {
			if err := i.RecordStatus(ctx, o, e.GetStatus(), e.GetMeta().GetOccurTime().AsTime()); err != nil {
				i.Logger.WarnContext(ctx, "invalidation consumer: recording an account status failed", "owner_id", o, "error", err)
			}
		}
		i.Cache.InvalidateOwner(o)
	default:
		i.Cache.Flush()
	}
}

// decode reads a suite event and its owner, as pkg/events' consumers do.
func decode(msg jetstream.Msg) (pkgevents.Event, owner.ID, error) {
	name := msg.Headers().Get(pkgevents.HeaderEventType)
	t, ok := pkgevents.LookupType(protoreflect.FullName(name))
	if !ok {
		return nil, owner.ID{}, fmt.Errorf("event type %q: not in the catalog", name)
	}
	ev := t.New()
	if err := proto.Unmarshal(msg.Data(), ev); err != nil {
		return nil, owner.ID{}, fmt.Errorf("unmarshal %s: %w", name, err)
	}
	o, err := owner.Parse(ev.GetMeta().GetOwnerId())
	if err != nil {
		return nil, owner.ID{}, fmt.Errorf("%s: %w", name, err)
	}
	if h := msg.Headers().Get(pkgevents.HeaderOwnerID); h != o.String() {
		return nil, owner.ID{}, fmt.Errorf("%s: owner header disagrees with the payload", name)
	}
	return ev, o, nil
}
