-- Failure isolation and webhook-driven review. Keep in step with migrations/sqlite.

-- A delivery whose processing failed is retried after a backoff: attempts so far, and the
-- time (ms) before which it is not tried again. After the last attempt it is `failed`.
ALTER TABLE deliveries ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN retry_at BIGINT NOT NULL DEFAULT 0;

-- A ticket whose re-read from the forge failed is tried again after a backoff, so one broken
-- ticket is not asked for on every pass.
ALTER TABLE tickets ADD COLUMN reconcile_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN reconcile_retry_at BIGINT NOT NULL DEFAULT 0;

-- Why a ticket left its repository (deleted, transferred elsewhere), when it did.
ALTER TABLE tickets ADD COLUMN gone_reason TEXT;

-- A review, check or status delivery about the ticket's pull request: review it on the next
-- pass, whatever the poll interval.
ALTER TABLE tickets ADD COLUMN review_wanted BIGINT NOT NULL DEFAULT 0;

-- Reviews submitted up to this time (ms) were acted on: a "changes requested" is answered by
-- the agent's next push, not acted on again after every run.
ALTER TABLE tickets ADD COLUMN reviews_answered_at BIGINT NOT NULL DEFAULT 0;
