-- The source of truth: immutable case events, one stream per case.
CREATE TABLE events (
    -- Global order of commit-time inserts; gaps are possible and harmless.
    position        BIGSERIAL PRIMARY KEY,
    stream_id       UUID        NOT NULL,
    stream_version  INTEGER     NOT NULL CHECK (stream_version > 0),
    event_type      TEXT        NOT NULL,
    schema_version  SMALLINT    NOT NULL,
    payload         JSONB       NOT NULL,
    metadata        JSONB       NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    -- hash = sha256(prev_hash || canonical event); prev_hash of version 1 is 32 zero bytes.
    prev_hash       BYTEA       NOT NULL,
    hash            BYTEA       NOT NULL,
    -- Optimistic concurrency: a writer that lost the race violates this and must decide again.
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version)
);

-- Written in the same transaction as the events it publishes; the relay marks a row only
-- after the broker acknowledged it, so no event exists only in Kafka or only in Postgres.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    position      BIGINT      NOT NULL REFERENCES events (position),
    topic         TEXT        NOT NULL,
    published_at  TIMESTAMPTZ
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
