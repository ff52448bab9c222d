-- Reference data: loaded from files or admin commands, not events.

CREATE TABLE partners (
    partner_id  TEXT PRIMARY KEY,
    name        TEXT NOT NULL
);

-- API keys are high-entropy secrets: a SHA-256 digest is enough to look them up and
-- reveals nothing. The plain key is never stored.
CREATE TABLE api_keys (
    key_sha256      BYTEA PRIMARY KEY,
    principal_kind  TEXT   NOT NULL CHECK (principal_kind IN ('partner', 'regulator')),
    principal_id    TEXT   NOT NULL,
    scopes          TEXT[] NOT NULL
);

CREATE TABLE platforms (
    platform_id      TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    country          TEXT NOT NULL,
    notice_endpoint  TEXT NOT NULL
);

-- Domains a platform serves; a URL's host matches a domain or any subdomain of it.
CREATE TABLE platform_domains (
    domain       TEXT PRIMARY KEY,
    platform_id  TEXT NOT NULL REFERENCES platforms (platform_id)
);

CREATE TABLE hash_lists (
    name     TEXT PRIMARY KEY,
    source   TEXT   NOT NULL,
    -- Bumped on every change; a classification records the version it used.
    version  BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE hash_list_entries (
    list         TEXT        NOT NULL REFERENCES hash_lists (name),
    algorithm    TEXT        NOT NULL,
    value        TEXT        NOT NULL,
    class        TEXT        NOT NULL,
    added_at     TIMESTAMPTZ NOT NULL,
    delisted_at  TIMESTAMPTZ,
    PRIMARY KEY (list, algorithm, value)
);

CREATE INDEX hash_list_entries_lookup ON hash_list_entries (algorithm, value) WHERE delisted_at IS NULL;
