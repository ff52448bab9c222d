-- Reports as their senders identify them: a partner's reference names one report, and
-- re-sending it is answered from here instead of appending again.
CREATE TABLE reports (
    report_id          UUID PRIMARY KEY,
    partner_id         TEXT,
    partner_reference  TEXT,
    -- SHA-256 of the canonical JSON of the body: the same report sent twice, or a different
    -- report under a reference already used.
    body_sha256        BYTEA       NOT NULL,
    received_at        TIMESTAMPTZ NOT NULL,
    -- [{case_id, url, existing}] as answered the first time.
    cases              JSONB       NOT NULL,
    CONSTRAINT reports_partner_reference_unique UNIQUE (partner_id, partner_reference)
);

-- The latest case of every reported location: a second report of an open case becomes
-- evidence on it, a report after closure a reappearance.
CREATE TABLE case_locations (
    url      TEXT PRIMARY KEY,
    case_id  UUID NOT NULL
);

-- Keys can be rotated: several active per principal, each revocable, identified by a
-- short public id (the first characters of the key).
ALTER TABLE api_keys
    ADD COLUMN key_id      TEXT,
    ADD COLUMN label       TEXT,
    ADD COLUMN created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN revoked_at  TIMESTAMPTZ;

-- What a member of the public chose to tell us: personal data, kept apart from the events
-- so it can be erased, and shown to nobody but the reporter holding the PIN.
CREATE TABLE public_reporters (
    public_reference  TEXT PRIMARY KEY,
    pin_hash          TEXT        NOT NULL,
    report_id         UUID        NOT NULL REFERENCES reports (report_id),
    free_text         TEXT,
    email             TEXT,
    created_at        TIMESTAMPTZ NOT NULL
);
