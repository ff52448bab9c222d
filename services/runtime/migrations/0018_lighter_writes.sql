-- Every append replaces its cases' wake-ups: keyed by case first, the primary key finds
-- them, and the second index on the case goes (one index fewer to write per wake-up).
ALTER TABLE stage_timers DROP CONSTRAINT stage_timers_pkey;
ALTER TABLE stage_timers ADD PRIMARY KEY (case_id, stage);
DROP INDEX stage_timers_case;

-- Outbox rows are written beside their events by the one append path; checking the
-- reference locked each event row again (a second write of its page) for nothing.
ALTER TABLE outbox DROP CONSTRAINT outbox_position_fkey;

-- The outbox holds what is still to be published: the relay deletes a row once the broker
-- acknowledged it (the event itself stays in `events`). Quarantined rows stay, with
-- their reason, until an operator acts.
-- The table stays small, so the primary key is all the relay needs to find the oldest.
DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP INDEX outbox_unpublished;
ALTER TABLE outbox DROP COLUMN published_at;

-- These tables churn with every change of a case: vacuum them after a fixed number of dead
-- rows, not after a fifth of the table, so scans do not wade through dead entries.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
ALTER TABLE stage_timers SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
ALTER TABLE case_summaries SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_threshold = 5000);

-- A notice's event is large enough to be compressed on insert: lz4 costs a fraction of pglz.
ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
