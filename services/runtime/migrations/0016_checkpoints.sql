-- Signed checkpoints of the whole event log: a Merkle root over every stream's head as of a
-- position, each naming the root before it (services/runtime/src/checkpoint.rs).
CREATE TABLE checkpoints (
    sequence    BIGINT      PRIMARY KEY,
    position    BIGINT      NOT NULL,
    streams     BIGINT      NOT NULL,
    root        TEXT        NOT NULL,
    -- Exactly what was signed.
    statement   TEXT        NOT NULL,
    signature   TEXT        NOT NULL,
    key_id      TEXT        NOT NULL,
    taken_at    TIMESTAMPTZ NOT NULL
);
