package events

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	"github.com/forgeapps/backbone/pkg/testkit/natstest"
)

// The proto comments are where a subject is first written down; the catalog must agree with
// every one of them, and must list every message that carries EventMeta.
func TestCatalogMatchesTheProtoContracts(t *testing.T) {
	files, err := filepath.Glob("../../proto/forge/events/v1/*.proto")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	subjectRe := regexp.MustCompile(`(?s)((?://[^\n]*\n)+)message (\w+) \{`)
	wordRe := regexp.MustCompile(`Subject: ([a-z0-9_.<>]*[a-z0-9_<>])`)
	fromProto := map[protoreflect.FullName]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range subjectRe.FindAllStringSubmatch(string(src), -1) {
			comment := regexp.MustCompile(`\n?//\s?`).ReplaceAllString(m[1], " ") + " "
			if s := wordRe.FindStringSubmatch(comment); s != nil {
				fromProto[protoreflect.FullName("forge.events.v1."+m[2])] = s[1]
			}
		}
	}
	require.NotEmpty(t, fromProto)

	// Every message of the package that carries meta is an event.
	meta := (&eventsv1.EventMeta{}).ProtoReflect().Descriptor().FullName()
	var events []protoreflect.FullName
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		d := mt.Descriptor()
		if d.ParentFile().Package() == "forge.events.v1" {
			if f := d.Fields().ByName("meta"); f != nil && f.Message() != nil && f.Message().FullName() == meta {
				events = append(events, d.FullName())
			}
		}
		return true
	})
	require.NotEmpty(t, events)

	for _, name := range events {
		typ, ok := LookupType(name)
		if !assert.True(t, ok, "%s carries EventMeta but is not in the catalog", name) {
			continue
		}
		want, ok := fromProto[name]
		if !assert.True(t, ok, "%s: no 'Subject:' in its proto comment", name) {
			continue
		}
		if name == "forge.events.v1.PurgeStoreCompleted" {
			assert.Equal(t, "lifecycle.purge.completed.<store>", want)
			assert.Equal(t, SubjectPurgeCompleted, typ.Subject)
		} else {
			assert.Equal(t, want, typ.Subject, "%s", name)
		}
		stream, ok := streamOfSubject(typ.Subject)
		if typ.Subject == SubjectPurgeCompleted {
			stream, ok = streamOfSubject("lifecycle.purge.completed.apps.postgres")
		}
		assert.True(t, ok, "%s: subject stored by no stream", name)
		assert.Equal(t, typ.Stream, stream, "%s", name)
	}
	assert.Len(t, Catalog(), len(events))
}

func TestPurgeCompletedSubject(t *testing.T) {
	tests := []struct {
		name, store, want string
		ok                bool
	}{
		{"dotted store", "apps.postgres", "lifecycle.purge.completed.apps.postgres", true},
		{"plain store", "vault", "lifecycle.purge.completed.vault", true},
		{"empty", "", "", false},
		{"wildcard", "apps.*", "", false},
		{"full wildcard", ">", "", false},
		{"empty token", "apps..postgres", "", false},
		{"space", "apps postgres", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PurgeCompletedSubject(tc.store)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSubjectMatches(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"apps.>", "apps.app.created", true},
		{"apps.>", "apps", false},
		{"apps.*", "apps.app", true},
		{"apps.*", "apps.app.created", false},
		{"apps.app.created", "apps.app.created", true},
		{"apps.app.created", "apps.app", false},
		{"tenant.>", "apps.app.created", false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+" "+tc.subject, func(t *testing.T) {
			assert.Equal(t, tc.want, subjectMatches(tc.pattern, tc.subject))
		})
	}
}

func TestEnsureStreams(t *testing.T) {
	_, js := startJetStream(t) // runs EnsureStreams once
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// Idempotent: every service runs it at start.
	require.NoError(t, EnsureStreams(ctx, js, StreamsConfig{}))

	for _, spec := range Streams() {
		t.Run(spec.Name, func(t *testing.T) {
			s, err := js.Stream(ctx, spec.Name)
			require.NoError(t, err)
			cfg := s.CachedInfo().Config
			assert.Equal(t, jetstream.FileStorage, cfg.Storage)
			assert.Equal(t, jetstream.InterestPolicy, cfg.Retention)
			assert.Equal(t, time.Hour, cfg.Duplicates)
			assert.Equal(t, 7*24*time.Hour, cfg.MaxAge)
			assert.Equal(t, 1, cfg.Replicas)
			assert.Equal(t, spec.Subjects, cfg.Subjects)
		})
	}
	s, err := js.Stream(ctx, StreamAdvisories)
	require.NoError(t, err)
	assert.Equal(t, jetstream.LimitsPolicy, s.CachedInfo().Config.Retention)
	assert.Equal(t, jetstream.FileStorage, s.CachedInfo().Config.Storage)
	assert.Len(t, s.CachedInfo().Config.Subjects, len(Streams()))
}

func TestStreamsConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  StreamsConfig
		ok   bool
	}{
		{"defaults", StreamsConfig{}, true},
		{"production", StreamsConfig{Replicas: 3, MaxAge: 72 * time.Hour, Duplicates: 2 * time.Hour}, true},
		{"too many replicas", StreamsConfig{Replicas: 7}, false},
		{"negative replicas", StreamsConfig{Replicas: -1}, false},
		{"window longer than age", StreamsConfig{MaxAge: time.Minute, Duplicates: time.Hour}, false},
		{"negative age", StreamsConfig{MaxAge: -time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfgs, err := StreamConfigs(tc.cfg)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			want := max(tc.cfg.Replicas, 1)
			for _, c := range cfgs {
				assert.Equal(t, want, c.Replicas, c.Name)
			}
		})
	}
}

func TestEnsureStreamsCreatesListedConsumers(t *testing.T) {
	js := natstest.Start(t).JetStream(t)
	ctx := context.Background()
	require.NoError(t, EnsureStreams(ctx, js, StreamsConfig{}))
	for _, d := range DurableConsumers() {
		c, err := js.Consumer(ctx, d.Stream, d.Durable)
		require.NoError(t, err, "%s on %s", d.Durable, d.Stream)
		require.Equal(t, d.Subjects, c.CachedInfo().Config.FilterSubjects)
		require.True(t, IsListed(ConsumerConfig{Stream: d.Stream, Durable: d.Durable, Subjects: d.Subjects}))
	}
	// An event published before any consumer ran is kept for each listed consumer.
	_, err := js.Publish(ctx, SubjectPurgeRequested, []byte("x"))
	require.NoError(t, err)
	info, err := js.Stream(ctx, StreamLifecycle)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.CachedInfo().State.Msgs)

	// Running it again is harmless.
	require.NoError(t, EnsureStreams(ctx, js, StreamsConfig{}))
	require.False(t, IsListed(ConsumerConfig{Stream: StreamApps, Durable: "nobody", Subjects: []string{SubjectAppCreated}}))
}
