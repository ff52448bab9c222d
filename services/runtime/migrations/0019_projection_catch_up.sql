-- The projection no longer gets a wake-up row per append (two writes of every change of
-- every case); it catches up from the position it last looked at instead. It starts from
-- the first event of any case whose wake-up was still waiting, or from the end.
CREATE TABLE projection_position (
    single   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),
    position BIGINT  NOT NULL
);

INSERT INTO projection_position (position)
SELECT coalesce(
    (SELECT min(e.position) - 1 FROM events e
     WHERE e.stream_id IN (SELECT case_id FROM stage_timers WHERE stage = 'projection')),
    (SELECT max(position) FROM events),
    0);

DELETE FROM stage_timers WHERE stage = 'projection';
