-- How a partner hotline of the network takes forwarded cases: a channel as the platform
-- registry writes one (`{"channel": {"kind": "api", ...}, "confirm_within": "7d"}`);
-- NULL when it takes none by API and an analyst forwards by other means.
ALTER TABLE partners ADD COLUMN forwarding JSONB;
