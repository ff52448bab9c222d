-- When the sweeper last re-published an event, so a case that stays stuck (waiting for an
-- operator) is not re-published on every sweep.
CREATE TABLE sweeps (
    position  BIGINT PRIMARY KEY REFERENCES events (position),
    swept_at  TIMESTAMPTZ NOT NULL
);

-- The sweeper's scan: events after which a stage must act, by age.
CREATE INDEX events_waiting_for_a_stage ON events (recorded_at)
    WHERE event_type IN ('ReportReceived', 'ReportedAgain', 'Classified', 'NoticeIssued');
