-- Hosting providers check uploads against the hash lists with keys of their own.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_principal_kind_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_principal_kind_check
    CHECK (principal_kind IN ('partner', 'regulator', 'analyst', 'operator', 'hosting_provider'));

-- What a provider may check and how fast, as the hash-check part reads it
-- (`services/hashcheck/src/providers.rs`): `classes`, `checks_per_second`, `open_cases`.
CREATE TABLE hash_check_providers (
    provider_id  TEXT PRIMARY KEY,
    name         TEXT  NOT NULL,
    settings     JSONB NOT NULL DEFAULT '{}'
);

-- Counts only: a hash a provider sent is never stored unless it matched.
CREATE TABLE hash_check_daily (
    provider_id  TEXT   NOT NULL,
    day          DATE   NOT NULL,
    checks       BIGINT NOT NULL DEFAULT 0,
    -- PDQ hashes below the quality threshold: answered "not checked".
    not_checked  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (provider_id, day)
);

-- One row per matched hash: which list entry it matched, so a delisting can tell which
-- providers blocked on a false positive. `listed_value` is the list's hash (for PDQ the
-- listed one, not the provider's).
CREATE TABLE hash_check_hits (
    hit_id        BIGSERIAL   PRIMARY KEY,
    provider_id   TEXT        NOT NULL,
    checked_at    TIMESTAMPTZ NOT NULL,
    list          TEXT        NOT NULL,
    list_version  BIGINT      NOT NULL,
    algorithm     TEXT        NOT NULL,
    listed_value  TEXT        NOT NULL,
    class         TEXT        NOT NULL,
    distance      INTEGER,
    -- Where the provider found it on its servers; NULL when it was blocked at upload.
    url           TEXT,
    case_id       UUID
);

CREATE INDEX hash_check_hits_entry ON hash_check_hits (list, listed_value);
CREATE INDEX hash_check_hits_provider_day ON hash_check_hits (provider_id, checked_at);

-- The statistics' read model: checks and hits per provider, class and day.
CREATE VIEW hash_check_statistics AS
SELECT d.provider_id, d.day, d.checks, d.not_checked, h.class, coalesce(h.hits, 0) AS hits
FROM hash_check_daily d
LEFT JOIN (
    SELECT provider_id, (checked_at AT TIME ZONE 'UTC')::date AS day, class, count(*) AS hits
    FROM hash_check_hits
    GROUP BY 1, 2, 3
) h ON h.provider_id = d.provider_id AND h.day = d.day;
