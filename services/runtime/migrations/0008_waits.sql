-- Wake-ups are written with the events that imply them (see `timers.rs`): a timer knows the
-- case version it was set at, and how often it fired without moving the case on.
ALTER TABLE stage_timers
    ADD COLUMN version INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN fired   INTEGER NOT NULL DEFAULT 0;
CREATE INDEX stage_timers_case ON stage_timers (case_id);

-- Cases that cannot move on by themselves, with the reason; cleared by the case's next change.
CREATE TABLE operator_queue (
    case_id  UUID PRIMARY KEY,
    reason   TEXT        NOT NULL,
    detail   TEXT,
    version  INTEGER     NOT NULL,
    since    TIMESTAMPTZ NOT NULL
);
CREATE INDEX operator_queue_since ON operator_queue (since);

-- The timers replace the sweeper's scan of the events table.
DROP TABLE sweeps;
DROP INDEX events_waiting_for_a_stage;

-- Outbox rows the relay cannot publish are set apart with the reason, and the rest goes on.
ALTER TABLE outbox
    ADD COLUMN quarantined_at TIMESTAMPTZ,
    ADD COLUMN quarantine_reason TEXT;
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL AND quarantined_at IS NULL;

-- Operators read the operator queue and the quarantined outbox rows.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_principal_kind_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_principal_kind_check
    CHECK (principal_kind IN ('partner', 'regulator', 'analyst', 'operator'));
