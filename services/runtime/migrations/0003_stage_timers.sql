-- When a stage wants to look at a case again (a removal check, a dispatch retry).
-- Derived from the case's events by the stage; losing a row is healed by reprocessing.
CREATE TABLE stage_timers (
    stage    TEXT        NOT NULL,
    case_id  UUID        NOT NULL,
    due_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stage, case_id)
);

CREATE INDEX stage_timers_due ON stage_timers (stage, due_at);
