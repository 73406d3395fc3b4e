package events

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
)

// The streams of the suite. Each owns one subject namespace.
const (
	StreamTenant    = "TENANT"
	StreamApps      = "APPS"
	StreamLifecycle = "LIFECYCLE"
	// StreamAdvisories captures JetStream's max-deliveries advisories for the streams above,
	// so a dead letter is recorded even while the consumer that must handle it is down.
	StreamAdvisories = "EVENTS_ADVISORIES"
)

// The subject of every event type, as written in the proto comments.
const (
	SubjectAccountCreated       = "tenant.account.created"
	SubjectAccountStatusChanged = "tenant.account.status_changed"
	SubjectSessionsRevoked      = "tenant.sessions.revoked"
	SubjectAppCreated           = "apps.app.created"
	SubjectAppDeleted           = "apps.app.deleted"
	SubjectAppAccessChanged     = "apps.app.access_changed"
	SubjectExportRequested      = "lifecycle.export.requested"
	SubjectDeletionRequested    = "lifecycle.deletion.requested"
	SubjectDeletionCancelled    = "lifecycle.deletion.cancelled"
	SubjectPurgeRequested       = "lifecycle.purge.requested"
	// SubjectPurgeCompleted is the filter for every store's PurgeStoreCompleted; the event
	// itself goes to lifecycle.purge.completed.<store> (see PurgeCompletedSubject).
	SubjectPurgeCompleted = "lifecycle.purge.completed.>"
)

// advisoryMaxDeliveriesPrefix is the subject prefix of JetStream's max-deliveries advisory:
// the full subject is <prefix>.<stream>.<consumer>.
const advisoryMaxDeliveriesPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// Event is a suite event: a protobuf message from forge.events.v1 carrying EventMeta.
type Event interface {
	proto.Message
	GetMeta() *eventsv1.EventMeta
}

// EventType is one row of the catalog.
type EventType struct {
	// Name is the protobuf full name, sent in the Forge-Event-Type header.
	Name protoreflect.FullName
	// Subject is the subject the event is published on; for per-store events it is the
	// filter covering all of them (ending in ">").
	Subject string
	// Stream is the stream that stores the subject.
	Stream string

	newMsg func() Event
}

// New returns an empty message of the type, ready to unmarshal into.
func (t EventType) New() Event { return t.newMsg() }

// StreamSpec is one stream of the suite and the subjects it stores.
type StreamSpec struct {
	Name        string
	Subjects    []string
	Description string
}

// Streams lists the event streams of the suite (the advisory stream is not among them: it
// is derived from these by EnsureStreams).
func Streams() []StreamSpec {
	return []StreamSpec{
		{Name: StreamTenant, Subjects: []string{"tenant.>"}, Description: "tenant service events: accounts, sessions"},
		{Name: StreamApps, Subjects: []string{"apps.>"}, Description: "apps service events: apps and who may see them"},
		{Name: StreamLifecycle, Subjects: []string{"lifecycle.>"}, Description: "data-lifecycle workflows: export, deletion, purge"},
	}
}

// Catalog lists every event type, its subject and its stream. It is the one place that says
// which subject an event travels on; a test checks it covers every message of forge.events.v1.
func Catalog() []EventType {
	return []EventType{
		entry[*eventsv1.AccountCreated](SubjectAccountCreated, StreamTenant),
		entry[*eventsv1.AccountStatusChanged](SubjectAccountStatusChanged, StreamTenant),
		entry[*eventsv1.SessionsRevoked](SubjectSessionsRevoked, StreamTenant),
		entry[*eventsv1.AppCreated](SubjectAppCreated, StreamApps),
		entry[*eventsv1.AppDeleted](SubjectAppDeleted, StreamApps),
		entry[*eventsv1.AppAccessChanged](SubjectAppAccessChanged, StreamApps),
		entry[*eventsv1.ExportRequested](SubjectExportRequested, StreamLifecycle),
		entry[*eventsv1.DeletionRequested](SubjectDeletionRequested, StreamLifecycle),
		entry[*eventsv1.DeletionCancelled](SubjectDeletionCancelled, StreamLifecycle),
		entry[*eventsv1.PurgeRequested](SubjectPurgeRequested, StreamLifecycle),
		entry[*eventsv1.PurgeStoreCompleted](SubjectPurgeCompleted, StreamLifecycle),
	}
}

// entry builds a catalog row for the message type T (a pointer to a generated struct).
func entry[T Event](subject, stream string) EventType {
	var zero T
	mt := zero.ProtoReflect().Type()
	return EventType{
		Name:    mt.Descriptor().FullName(),
		Subject: subject,
		Stream:  stream,
		newMsg:  func() Event { return mt.New().Interface().(Event) },
	}
}

// LookupType finds an event type by its protobuf full name.
func LookupType(name protoreflect.FullName) (EventType, bool) {
	for _, t := range Catalog() {
		if t.Name == name {
			return t, true
		}
	}
	return EventType{}, false
}

// storeToken is what a purge store name may look like inside a subject: dot-separated
// lower-case tokens, no wildcards, no empty tokens.
var storeToken = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)*$`)

// PurgeCompletedSubject is the subject of a store's PurgeStoreCompleted event.
func PurgeCompletedSubject(store string) (string, error) {
	if !storeToken.MatchString(store) {
		return "", fmt.Errorf("purge store %q: not a valid subject suffix", store)
	}
	return strings.TrimSuffix(SubjectPurgeCompleted, ">") + store, nil
}

// SubjectOf returns the subject ev is published on and the stream that stores it.
func SubjectOf(ev Event) (subject, stream string, err error) {
	t, ok := LookupType(ev.ProtoReflect().Descriptor().FullName())
	if !ok {
		return "", "", fmt.Errorf("event type %s: not in the catalog", ev.ProtoReflect().Descriptor().FullName())
	}
	if p, ok := ev.(*eventsv1.PurgeStoreCompleted); ok {
		s, err := PurgeCompletedSubject(p.GetStore())
		return s, t.Stream, err
	}
	return t.Subject, t.Stream, nil
}

// streamOfSubject names the stream that stores a concrete subject.
func streamOfSubject(subject string) (string, bool) {
	for _, s := range Streams() {
		for _, pattern := range s.Subjects {
			if subjectMatches(pattern, subject) {
				return s.Name, true
			}
		}
	}
	return "", false
}

// subjectMatches reports whether a concrete subject matches a NATS pattern (* and >).
func subjectMatches(pattern, subject string) bool {
	p := strings.Split(pattern, ".")
	s := strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

// DurableConsumer is one durable consumer of the suite: the service that runs it calls
// Consume with exactly this stream, durable name and subjects.
type DurableConsumer struct {
	Stream   string
	Durable  string
	Subjects []string
}

// DurableConsumers lists every durable consumer the services run. It exists because the
// streams use Interest retention: JetStream keeps an event only for the consumers that exist
// when it is published, so an event published before its consumer's first start would be
// dropped. EnsureStreams (which every service calls at start) therefore creates each consumer
// listed here that does not exist yet. IsListed lets each service test that the consumers it
// runs are on the list.
// Per-replica consumers (cache invalidation in the gateway and the sandbox origin) are not
// durable and not listed: they only care about events published while they run.
func DurableConsumers() []DurableConsumer {
	return []DurableConsumer{
		{Stream: StreamLifecycle, Durable: "tenant", Subjects: []string{SubjectPurgeRequested}},
		{Stream: StreamLifecycle, Durable: "apps", Subjects: []string{SubjectPurgeRequested}},
		{Stream: StreamLifecycle, Durable: "secrets-vault", Subjects: []string{SubjectPurgeRequested}},
		{Stream: StreamApps, Durable: "secrets-vault", Subjects: []string{SubjectAppDeleted}},
		{Stream: StreamLifecycle, Durable: "data-lifecycle-export", Subjects: []string{SubjectExportRequested}},
		{Stream: StreamLifecycle, Durable: "data-lifecycle-purge", Subjects: []string{SubjectPurgeRequested}},
		{Stream: StreamLifecycle, Durable: "data-lifecycle-purge-completed", Subjects: []string{SubjectPurgeCompleted}},
		{Stream: StreamTenant, Durable: "sandbox-origin", Subjects: []string{SubjectAccountStatusChanged}},
		{Stream: StreamLifecycle, Durable: "sandbox-origin", Subjects: []string{SubjectPurgeRequested}},
	}
}

// IsListed reports whether a consumer configuration matches an entry of DurableConsumers.
func IsListed(cfg ConsumerConfig) bool {
	for _, d := range DurableConsumers() {
		if d.Stream == cfg.Stream && d.Durable == cfg.Durable && slices.Equal(d.Subjects, cfg.Subjects) {
			return true
		}
	}
	return false
}
