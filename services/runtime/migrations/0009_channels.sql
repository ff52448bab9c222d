-- Each platform's channels in order of preference, its templates and its pace, as the
-- dispatch part reads them (services/dispatch/src/registry.rs). Credentials are named here
-- (env:NAME, file:PATH), never stored.
ALTER TABLE platforms ADD COLUMN dispatch JSONB NOT NULL DEFAULT '{}';

-- Cases that wait for an analyst other than in the review queue: a web form to fill in, a
-- notice no channel took, a platform's refusal to assess. Written with the events that lead
-- there, like the operator queue; the case's next change clears its entry.
CREATE TABLE analyst_tasks (
    case_id  UUID PRIMARY KEY,
    task     TEXT        NOT NULL,
    version  INTEGER     NOT NULL,
    since    TIMESTAMPTZ NOT NULL
);
CREATE INDEX analyst_tasks_since ON analyst_tasks (since);

-- Each platform's circuit breaker as the dispatch part last saw it, for operators.
CREATE TABLE dispatch_pace (
    platform_id  TEXT PRIMARY KEY,
    breaker      TEXT        NOT NULL,
    failures     INTEGER     NOT NULL,
    open_until   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL
);
