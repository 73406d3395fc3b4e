package revocation_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"

	"github.com/forgeapps/backbone/services/gateway/internal/revocation"
)

type dropper struct {
	mu       sync.Mutex
	sessions []string
	owners   []owner.ID
}

func (d *dropper) DropSession(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sessions = append(d.sessions, id)
}

func (d *dropper) DropOwner(id owner.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.owners = append(d.owners, id)
}

func (d *dropper) has(session string, o owner.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return (session == "" || slices.Contains(d.sessions, session)) && (o.IsZero() || slices.Contains(d.owners, o))
}

const waitFor = 10 * time.Second

func meta(o owner.ID) *eventsv1.EventMeta {
	return &eventsv1.EventMeta{EventId: uuid.NewString(), OwnerId: o.String(), Region: "us-east", OccurTime: timestamppb.Now()}
}

func TestFeedDropsWhatEventsName(t *testing.T) {
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, events.EnsureStreams(ctx, js, events.StreamsConfig{}))

	feed := revocation.New(nc, js, nil)
	d := &dropper{}
	done := make(chan error, 1)
	go func() { done <- feed.Run(ctx, d) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { _, live := feed.State(); return live }, waitFor, 10*time.Millisecond)

	publish := func(subject string, ev proto.Message) {
		t.Helper()
		b, err := proto.Marshal(ev)
		require.NoError(t, err)
		_, err = js.Publish(ctx, subject, b)
		require.NoError(t, err)
	}
	alice, bob, carol := owner.New(), owner.New(), owner.New()
	tests := []struct {
		name    string
		subject string
		ev      proto.Message
		session string
		owner   owner.ID
	}{
		{name: "one session", subject: events.SubjectSessionsRevoked,
			ev: &eventsv1.SessionsRevoked{Meta: meta(alice), SessionIds: []string{"s-1"}}, session: "s-1"},
		{name: "all sessions", subject: events.SubjectSessionsRevoked,
			ev: &eventsv1.SessionsRevoked{Meta: meta(bob), All: true}, owner: bob},
		{name: "status change", subject: events.SubjectAccountStatusChanged,
			ev: &eventsv1.AccountStatusChanged{Meta: meta(carol), Status: "deletion_pending"}, owner: carol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			publish(tt.subject, tt.ev)
			require.Eventually(t, func() bool { return d.has(tt.session, tt.owner) }, waitFor, 5*time.Millisecond)
		})
	}
	t.Run("an undecodable event invalidates everything", func(t *testing.T) {
		before, _ := feed.State()
		_, err := js.Publish(ctx, events.SubjectSessionsRevoked, []byte{0xff, 0xff, 0xff})
		require.NoError(t, err)
		require.Eventually(t, func() bool { e, _ := feed.State(); return e != before }, waitFor, 5*time.Millisecond)
	})
	t.Run("the cache is off while NATS is down and starts afresh after", func(t *testing.T) {
		before, _ := feed.State()
		ns.Shutdown()
		require.Eventually(t, func() bool { _, live := feed.State(); return !live }, waitFor, 5*time.Millisecond)
		ns.Restart()
		require.Eventually(t, func() bool { e, live := feed.State(); return live && e != before }, 3*waitFor, 10*time.Millisecond)
		// Events still arrive after the restart.
		dave := owner.New()
		publish(events.SubjectAccountStatusChanged, &eventsv1.AccountStatusChanged{Meta: meta(dave), Status: "active"})
		require.Eventually(t, func() bool { return d.has("", dave) }, 3*waitFor, 10*time.Millisecond)
	})
}
