-- Police first. How a law-enforcement partner takes referrals: a channel as the platform
-- registry writes one (`{"channel": {"kind": "api", ...}, "hold_for": "7d"}`).
ALTER TABLE partners ADD COLUMN police JSONB;

-- The hold of a case referred to the police, in the case summaries: whom it went to, when
-- the hold began and when it ended. A platform's response times start at delivery, after
-- the hold; the hold is counted here, apart.
ALTER TABLE case_summaries
    ADD COLUMN police_partner_id  TEXT,
    ADD COLUMN police_held_at     TIMESTAMPTZ,
    ADD COLUMN police_released_at TIMESTAMPTZ;

CREATE INDEX case_summaries_police ON case_summaries (police_partner_id, police_held_at)
    WHERE police_partner_id IS NOT NULL;

-- Referrals per month and how long their holds lasted (released holds only), for the
-- annual report and the trends the organisation publishes.
CREATE VIEW police_referrals_monthly AS
SELECT date_trunc('month', police_held_at) AS month,
       count(*) AS referrals,
       count(police_released_at) AS released,
       count(*) FILTER (WHERE police_released_at IS NULL AND status = 'held_for_police') AS still_held,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM police_released_at - police_held_at))
           FILTER (WHERE police_released_at IS NOT NULL) AS median_hold_seconds,
       max(extract(epoch FROM police_released_at - police_held_at)) AS max_hold_seconds
FROM case_summaries
WHERE police_held_at IS NOT NULL
GROUP BY 1;
