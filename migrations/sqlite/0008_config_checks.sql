-- The `forgehand/config` check of each pull request head, recorded whatever its result (also a
-- timeout), so it is never run twice for one head, not even across a restart. Keep in step with
-- the other backend.
CREATE TABLE config_checks (
    repo_id  BIGINT NOT NULL REFERENCES repositories (id),
    head_sha TEXT   NOT NULL,
    -- valid | invalid | timed_out | unchanged (no .forgehand/ change); NULL until it finished.
    outcome  TEXT,
    -- Tries started: an attempt is recorded before it runs, so one that kills the process is
    -- not retried at once on start.
    attempts BIGINT NOT NULL DEFAULT 0,
    -- No new attempt before this time (ms); grows with each failed attempt.
    retry_at BIGINT NOT NULL DEFAULT 0,
    error    TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, head_sha)
);
