-- Review feedback waiting for a ticket's next run (JSON array of {hook, output}), set when a
-- reviewer requests changes and consumed by the run that follows.
ALTER TABLE tickets ADD COLUMN feedback TEXT;

-- The head commit whose `.forgehand/` tree was last checked for the `forgehand/config` check.
ALTER TABLE pull_requests ADD COLUMN config_checked_sha TEXT;

-- Set once the review and merge flow has concluded a ticket (done or canceled with its pull
-- request), so it is not looked at again.
ALTER TABLE tickets ADD COLUMN concluded BIGINT NOT NULL DEFAULT 0;
