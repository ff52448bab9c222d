-- Regulators and what each may see. A platform is in a regulator's remit when it is named
-- in `platforms` or established in one of `countries`; a NULL list does not limit that
-- dimension, so the CSAM authority lists classes only and a Digital Services Coordinator
-- its country. A regulator with every list NULL sees nothing: remit is given, not assumed.
CREATE TABLE regulators (
    regulator_id  TEXT PRIMARY KEY,
    name          TEXT   NOT NULL,
    platforms     TEXT[],
    countries     TEXT[],
    classes       TEXT[]
);

-- Every request a regulator made, answered or refused: who, what, when, how much.
CREATE TABLE regulator_access (
    id            BIGSERIAL   PRIMARY KEY,
    regulator_id  TEXT        NOT NULL,
    method        TEXT        NOT NULL,
    -- The path with its query string: which platform, period and class were asked for.
    target        TEXT        NOT NULL,
    status        SMALLINT    NOT NULL,
    answer_bytes  BIGINT      NOT NULL,
    at            TIMESTAMPTZ NOT NULL
);

CREATE INDEX regulator_access_by_regulator ON regulator_access (regulator_id, at);

-- One row per case on a known platform: the facts of its notice that the compliance
-- statistics are computed from, rebuilt from the case's events by the projection.
-- `counted_at` places the row in a period: delivery, else issue, else the report.
CREATE TABLE notice_facts (
    case_id              UUID        PRIMARY KEY,
    version              INTEGER     NOT NULL,
    platform_id          TEXT        NOT NULL,
    content_class        TEXT        NOT NULL,
    counted_at           TIMESTAMPTZ NOT NULL,
    notice_id            UUID,
    issued_at            TIMESTAMPTZ,
    delivered_at         TIMESTAMPTZ,
    deadline_at          TIMESTAMPTZ,
    receipt_at           TIMESTAMPTZ,
    decided_at           TIMESTAMPTZ,
    -- `DECISION_*` identifiers of the Transparency Database, as the platform reported them
    -- (a JSON array).
    decisions            JSONB       NOT NULL,
    -- Set when the platform refused the notice (its reason) or decided to leave the content
    -- up (its `DECISION_GROUND_*`).
    rejection_reason     TEXT,
    -- An analyst's assessment of the refusal: true, the notice was wrong.
    rejection_upheld     BOOLEAN,
    removed_at           TIMESTAMPTZ,
    reminders            INTEGER     NOT NULL,
    escalations          INTEGER     NOT NULL,
    reappeared           BOOLEAN     NOT NULL,
    police_held_at       TIMESTAMPTZ,
    police_released_at   TIMESTAMPTZ
);

CREATE INDEX notice_facts_platform ON notice_facts (platform_id, counted_at);
