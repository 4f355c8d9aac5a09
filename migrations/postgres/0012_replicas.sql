-- Poll state shared by replicas. Keep in step with migrations/sqlite.

-- When the review loop last asked the forge about the ticket (ms): each ticket is polled once
-- per `limits.review_poll` by whichever replica comes first, not once per replica.
ALTER TABLE tickets ADD COLUMN review_polled_at BIGINT;
