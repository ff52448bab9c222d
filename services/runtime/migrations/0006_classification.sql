-- Analysts review what automation cannot decide.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_principal_kind_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_principal_kind_check
    CHECK (principal_kind IN ('partner', 'regulator', 'analyst'));

-- The platform registry: DSA status and language next to the domains, and IP ranges for
-- hosts that match no registered domain.
ALTER TABLE platforms
    ADD COLUMN dsa_platform BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN language     TEXT    NOT NULL DEFAULT 'en';

CREATE TABLE platform_ranges (
    range        CIDR PRIMARY KEY,
    platform_id  TEXT NOT NULL REFERENCES platforms (platform_id)
);

-- Hash lists: a PDQ threshold per list, PDQ quality per entry, why an entry was delisted,
-- and how a source's own categories map to our classes.
ALTER TABLE hash_lists ADD COLUMN pdq_max_distance INTEGER NOT NULL DEFAULT 31;
ALTER TABLE hash_list_entries
    ADD COLUMN quality        SMALLINT,
    ADD COLUMN delist_reason  TEXT;

CREATE TABLE hash_list_categories (
    list             TEXT NOT NULL REFERENCES hash_lists (name),
    source_category  TEXT NOT NULL,
    class            TEXT NOT NULL,
    PRIMARY KEY (list, source_category)
);

-- Rules on normalised URLs: the whole URL, a domain and its subdomains, or a prefix.
CREATE TABLE url_rules (
    rule_id  TEXT PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('exact', 'domain', 'prefix')),
    pattern  TEXT NOT NULL,
    class    TEXT NOT NULL
);

-- Partners whose claimed category is accepted without review, per class.
CREATE TABLE partner_trust (
    partner_id  TEXT NOT NULL REFERENCES partners (partner_id),
    class       TEXT NOT NULL,
    PRIMARY KEY (partner_id, class)
);

-- What analysts decided about a location or a hash, to decide the same way next time.
CREATE TABLE prior_decisions (
    kind        TEXT        NOT NULL CHECK (kind IN ('url', 'hash')),
    key         TEXT        NOT NULL,
    class       TEXT        NOT NULL,
    case_id     UUID        NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, key)
);

-- Finds the cases a delisted hash classified.
CREATE INDEX events_classified_by_hash ON events ((payload -> 'evidence' ->> 'value'))
    WHERE event_type = 'Classified';

-- The review queue reads the summaries.
ALTER TABLE case_summaries
    ADD COLUMN claimed_class  TEXT,
    ADD COLUMN review_reason  TEXT,
    ADD COLUMN claimed_by     TEXT;

CREATE INDEX case_summaries_review_queue ON case_summaries (received_at) WHERE status = 'awaiting_review';
