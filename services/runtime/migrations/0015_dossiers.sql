-- Every key that ever signed what we hand out, by id: a dossier names the key that signed
-- it, and still verifies after the key was rotated out.
CREATE TABLE signing_keys (
    key_id          TEXT        PRIMARY KEY,
    public_key_pem  TEXT        NOT NULL,
    first_used_at   TIMESTAMPTZ NOT NULL
);

-- Enforcement dossiers a regulator asked for: built by one API process at a time (the
-- claim lapses if it dies), kept as the bytes of their .tar, in order.
CREATE TABLE dossiers (
    dossier_id     UUID        PRIMARY KEY,
    regulator_id   TEXT        NOT NULL,
    platform_id    TEXT        NOT NULL,
    request        JSONB       NOT NULL,
    -- The classes the regulator may see, when it asked; every class where NULL.
    classes        TEXT[],
    requested_at   TIMESTAMPTZ NOT NULL,
    -- `requested`, `building`, `finished` or `failed`.
    status         TEXT        NOT NULL,
    claimed_until  TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    failure        TEXT,
    bytes          BIGINT
);

CREATE INDEX dossiers_waiting ON dossiers (requested_at) WHERE status IN ('requested', 'building');

CREATE TABLE dossier_parts (
    dossier_id  UUID    NOT NULL REFERENCES dossiers (dossier_id),
    seq         INTEGER NOT NULL,
    bytes       BYTEA   NOT NULL,
    PRIMARY KEY (dossier_id, seq)
);
