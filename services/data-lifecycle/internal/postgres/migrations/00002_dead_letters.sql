-- event_dead_letters: events data-lifecycle's consumers gave up on (max deliveries or
-- undecodable), kept where an operator sees them, never dropped. Owner-scoped, so the
-- tenant's purge removes them too; a message without a readable owner is only logged.

-- +goose Up
CREATE TABLE event_dead_letters (
    owner_id    uuid        NOT NULL,
    stream      text        NOT NULL,
    consumer    text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    reason      text        NOT NULL,
    detail      text        NOT NULL DEFAULT '' CHECK (length(detail) <= 2000),
    subject     text        NOT NULL DEFAULT '',
    event_type  text        NOT NULL DEFAULT '',
    event_id    text        NOT NULL DEFAULT '',
    deliveries  bigint      NOT NULL DEFAULT 0,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, stream, consumer, stream_seq)
);
CALL forge_tenant_table('event_dead_letters');

-- +goose Down
DROP TABLE event_dead_letters;
