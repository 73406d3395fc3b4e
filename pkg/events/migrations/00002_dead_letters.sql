-- The consumers' dead letters, in the service schema, next to the outbox and the inbox: every
-- service that consumes events keeps what its consumers gave up on in the same table, written
-- by events.RecordDeadLetter and deleted with the owner's other rows by its purge
-- (events.PurgeDeadLetters).

-- +goose Up

-- event_dead_letters: events a consumer gave up on (max deliveries, or undecodable), kept
-- where an operator sees them. Owner-scoped like everything else: a dead letter naming its
-- owner is filed under it, and the owner's purge removes it. The message payload is not
-- kept (it stays in the stream until the stream's MaxAge); what identifies it is.
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

-- dead_letter_unowned keeps a dead letter that names no owner (a message too broken to say
-- whose it is), so it is not dropped either. It files the row under the nil UUID, which is no
-- tenant's: owner.Parse refuses it and database.DB.Tx never runs for it, so no runtime
-- transaction can read such rows (an operator reads them as the migration role). It only
-- inserts, only under the nil owner, and returns nothing: it cannot read a row, nor write one
-- under a tenant. The same message recorded again changes nothing.
-- +goose StatementBegin
CREATE FUNCTION dead_letter_unowned(p_stream text, p_consumer text, p_stream_seq bigint, p_reason text,
    p_detail text, p_subject text, p_event_type text, p_event_id text, p_deliveries bigint)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
AS $$
    INSERT INTO event_dead_letters (owner_id, stream, consumer, stream_seq, reason, detail, subject,
        event_type, event_id, deliveries)
    VALUES ('00000000-0000-0000-0000-000000000000', p_stream, p_consumer, p_stream_seq, p_reason,
        left(p_detail, 2000), p_subject, p_event_type, p_event_id, p_deliveries)
    ON CONFLICT DO NOTHING
$$;
-- +goose StatementEnd

-- Pinned to this schema like the relay's functions (see 00001).
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION dead_letter_unowned(text, text, bigint, text, text, text, text, text, bigint) SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION dead_letter_unowned(text, text, bigint, text, text, text, text, text, bigint) FROM PUBLIC;

-- +goose Down
DROP FUNCTION dead_letter_unowned(text, text, bigint, text, text, text, text, text, bigint);
DROP TABLE event_dead_letters;
