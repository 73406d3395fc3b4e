// Package events carries the suite's domain events from one service's Postgres transaction to
// the services that react to them, without losing or doubling an effect.
//
// The pieces, in the order an event travels:
//
//   - The catalog (catalog.go) names the JetStream streams and the subject of every event
//     type, in one place; EnsureStreams creates the streams.
//   - Outbox.Enqueue writes the event into the outbox table inside the caller's owner
//     transaction, so the state change and its announcement commit or roll back together.
//   - Relay publishes committed outbox rows to JetStream with Nats-Msg-Id set to the row's ID
//     (the event ID), waits for the PubAck, then deletes the rows. A crash between the two
//     republishes, and JetStream drops the duplicate inside its duplicate window.
//   - Consume runs a durable pull consumer: explicit acks, bounded redelivery with backoff,
//     the owner and trace context put into the handler's context. MarkProcessed records the
//     event ID in the inbox table inside the handler's own transaction, so a redelivery after
//     the duplicate window still has its effect once.
//   - A message that exhausts its deliveries is not dropped: JetStream's max-deliveries
//     advisory is captured by a stream, and Consume hands the message to a DeadLetter callback,
//     which usually keeps it in the event_dead_letters table (RecordDeadLetter).
//
// Streams use Interest retention, because several services consume the same subjects: a
// message stays until every durable consumer whose filter matches it has acked it. The
// flip side is that JetStream does not store a message no consumer is interested in yet, so
// each consuming service's durable consumer must exist (Consume creates it, and it outlives
// the process) before the events it needs are published: deploy consumers before producers.
//
// Postgres is the source of truth; JetStream carries work. In production the NATS servers run
// with `sync_interval: always` and the streams with 3 replicas (StreamsConfig.Replicas), since
// JetStream has been shown to lose acknowledged writes under its default fsync interval.
package events
