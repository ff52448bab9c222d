-- Signed-in dashboard sessions, and one-time sign-in tickets; only digests of the secrets.
CREATE TABLE dashboard_sessions (
    secret_sha256   BYTEA       PRIMARY KEY,
    -- `session` (the cookie) or `ticket` (a one-time sign-in link).
    kind            TEXT        NOT NULL,
    principal_kind  TEXT        NOT NULL,
    principal_id    TEXT        NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);
