package events_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pkgevents "github.com/forgeapps/backbone/pkg/events"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	sandboxevents "github.com/forgeapps/backbone/services/sandbox-origin/internal/events"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/sandboxtest"
)

// publish sends ev as the outbox relay would (same headers, Nats-Msg-Id = event ID).
func publish(t *testing.T, js jetstream.JetStream, o owner.ID, ev pkgevents.Event) {
	t.Helper()
	meta := ev.GetMeta()
	meta.EventId = uuid.NewString()
	meta.OwnerId = o.String()
	meta.Region = owner.DefaultRegion.String()
	meta.OccurTime = timestamppb.Now()
	subject, _, err := pkgevents.SubjectOf(ev)
	require.NoError(t, err)
	data, err := proto.Marshal(ev)
	require.NoError(t, err)
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(pkgevents.HeaderEventType, string(ev.ProtoReflect().Descriptor().FullName()))
	msg.Header.Set(pkgevents.HeaderContentType, pkgevents.ContentTypeProtobuf)
	msg.Header.Set(pkgevents.HeaderOwnerID, o.String())
	msg.Header.Set(jetstream.MsgIDHeader, meta.EventId)
	_, err = js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

func status(t *testing.T, c *http.Client, url string, cookie *http.Cookie) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestServingStopsWithinASecond changes access in apps (or tenant), publishes the event that
// announces it, and measures that requests made after the publish are refused within a second.
// Before the event the app is still served from the cache (the TTL is an hour), so it is the
// event, not the change in apps, that stops it.
func TestServingStopsWithinASecond(t *testing.T) {
	s := sandboxtest.Start(t, sandboxtest.Options{Events: true})
	c := s.Client(t)
	o := owner.New()

	cases := []struct {
		name   string
		vis    appsv1.Visibility
		token  bool
		change func(app uuid.UUID)
		event  func(app uuid.UUID) pkgevents.Event
	}{
		{name: "unpublished", vis: appsv1.Visibility_VISIBILITY_PUBLIC,
			change: func(app uuid.UUID) {
				s.Apps.Update(app, func(a *sandboxtest.App) { a.Visibility = appsv1.Visibility_VISIBILITY_PRIVATE })
			},
			event: func(app uuid.UUID) pkgevents.Event {
				return &eventsv1.AppAccessChanged{Meta: &eventsv1.EventMeta{}, AppId: app.String(), Reason: eventsv1.AppAccessChanged_REASON_UNPUBLISHED}
			}},
		{name: "visibility changed", vis: appsv1.Visibility_VISIBILITY_PUBLIC,
			change: func(app uuid.UUID) {
				s.Apps.Update(app, func(a *sandboxtest.App) { a.Visibility = appsv1.Visibility_VISIBILITY_LINK })
			},
			event: func(app uuid.UUID) pkgevents.Event {
				return &eventsv1.AppAccessChanged{Meta: &eventsv1.EventMeta{}, AppId: app.String(), Reason: eventsv1.AppAccessChanged_REASON_VISIBILITY_CHANGED}
			}},
		{name: "link revoked", vis: appsv1.Visibility_VISIBILITY_LINK, token: true,
			change: func(app uuid.UUID) {
				s.Apps.Update(app, func(a *sandboxtest.App) { delete(a.Tokens, "tok") })
			},
			event: func(app uuid.UUID) pkgevents.Event {
				return &eventsv1.AppAccessChanged{Meta: &eventsv1.EventMeta{}, AppId: app.String(), Reason: eventsv1.AppAccessChanged_REASON_LINK_REVOKED}
			}},
		{name: "deleted", vis: appsv1.Visibility_VISIBILITY_PUBLIC,
			change: func(app uuid.UUID) { s.Apps.Delete(app) },
			event: func(app uuid.UUID) pkgevents.Event {
				return &eventsv1.AppDeleted{Meta: &eventsv1.EventMeta{}, AppId: app.String()}
			}},
		{name: "owner deletion pending (apps still answering)", vis: appsv1.Visibility_VISIBILITY_PUBLIC,
			change: func(uuid.UUID) {},
			event: func(uuid.UUID) pkgevents.Event {
				return &eventsv1.AccountStatusChanged{Meta: &eventsv1.EventMeta{}, Status: "deletion_pending"}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := uuid.New()
			s.Apps.Put(app, &sandboxtest.App{Owner: o, Visibility: tc.vis, Files: map[string]string{"index.html": "hi"}})
			var cookie *http.Cookie
			if tc.token {
				s.Apps.Update(app, func(a *sandboxtest.App) { a.Tokens["tok"] = time.Now().Add(time.Hour) })
				req, err := http.NewRequest(http.MethodGet, s.URL(app, "/?forge_share=tok"), nil)
				require.NoError(t, err)
				resp, err := c.Do(req)
				require.NoError(t, err)
				_ = resp.Body.Close()
				require.Equal(t, http.StatusSeeOther, resp.StatusCode)
				cookie = resp.Cookies()[0]
			}
			require.Equal(t, http.StatusOK, status(t, c, s.URL(app, "/"), cookie))
			tc.change(app)
			require.Equal(t, http.StatusOK, status(t, c, s.URL(app, "/"), cookie), "still cached before the event")

			publish(t, s.JetStream, o, tc.event(app))
			published := time.Now()
			deadline := published.Add(time.Second)
			for {
				code := status(t, c, s.URL(app, "/"), cookie)
				if code == http.StatusNotFound {
					break
				}
				require.Equal(t, http.StatusOK, code)
				require.True(t, time.Now().Before(deadline), "still served %v after the event", time.Since(published))
			}
			t.Logf("refused %v after the event", time.Since(published))
		})
	}

	t.Run("owner restored", func(t *testing.T) {
		app := uuid.New()
		s.Apps.Put(app, &sandboxtest.App{Owner: o, Visibility: appsv1.Visibility_VISIBILITY_PUBLIC, Files: map[string]string{"index.html": "hi"}})
		require.Equal(t, http.StatusNotFound, status(t, c, s.URL(app, "/"), nil), "the owner is deletion_pending")
		publish(t, s.JetStream, o, &eventsv1.AccountStatusChanged{Meta: &eventsv1.EventMeta{}, Status: "active"})
		require.Eventually(t, func() bool { return status(t, c, s.URL(app, "/"), nil) == http.StatusOK }, 5*time.Second, 10*time.Millisecond)
	})
}

func TestDurableConsumersAreListed(t *testing.T) {
	for _, cfg := range []pkgevents.ConsumerConfig{sandboxevents.StatusConsumer(), sandboxevents.PurgeConsumer()} {
		require.True(t, pkgevents.IsListed(cfg), "%s on %s", cfg.Durable, cfg.Stream)
	}
}
