-- One row per case, rebuilt from its events by the projection.
CREATE TABLE case_summaries (
    case_id              UUID PRIMARY KEY,
    version              INTEGER     NOT NULL,
    status               TEXT        NOT NULL,
    partner_id           TEXT,
    url                  TEXT        NOT NULL,
    content_class        TEXT,
    platform_id          TEXT,
    received_at          TIMESTAMPTZ NOT NULL,
    notice_issued_at     TIMESTAMPTZ,
    notice_delivered_at  TIMESTAMPTZ,
    removal_verified_at  TIMESTAMPTZ,
    closed_at            TIMESTAMPTZ
);

CREATE INDEX case_summaries_platform ON case_summaries (platform_id);
