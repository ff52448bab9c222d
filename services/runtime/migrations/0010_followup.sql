-- A platform's answer names our notice; this finds the case that issued it without a
-- table of its own to keep in step.
CREATE INDEX events_notice_issued ON events (((payload -> 'notice' ->> 'notice_id')::uuid))
    WHERE event_type = 'NoticeIssued';

-- The secrets a platform signs its answers with (env:NAME or file:PATH, never the secret):
-- two at a time while it rotates.
ALTER TABLE platforms ADD COLUMN answer_secrets JSONB NOT NULL DEFAULT '[]';
