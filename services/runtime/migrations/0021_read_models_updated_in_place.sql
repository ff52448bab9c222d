-- Read models updated in place. Most changes of a case change its status, and while an
-- index's predicate named the status, no update of a case summary could be heap-only (HOT:
-- no new index entries, the old version pruned on its page): 11 % of them were. The review
-- queue is now indexed by a column that changes only when a case enters or leaves review,
-- and the pages of both read models keep room for the next version of their rows.
ALTER TABLE case_summaries ADD COLUMN review_queued_at timestamptz;
UPDATE case_summaries SET review_queued_at = received_at WHERE status = 'awaiting_review';
DROP INDEX case_summaries_review_queue;
CREATE INDEX case_summaries_review_queue ON case_summaries (review_queued_at, case_id)
    WHERE review_queued_at IS NOT NULL;
ALTER TABLE case_summaries SET (fillfactor = 70);
ALTER TABLE notice_facts SET (fillfactor = 70);
