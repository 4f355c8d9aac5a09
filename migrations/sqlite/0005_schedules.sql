-- Schedules (`.forgehand/schedules.yaml`). Times are milliseconds since the Unix epoch.

-- Where each schedule's clock stands: `since_at` is when the scheduler first saw it (earlier
-- due times are never fired), `last_due_at` the latest scheduled due time claimed.
CREATE TABLE schedule_state (
    repo_id      BIGINT  NOT NULL REFERENCES repositories (id),
    name         TEXT    NOT NULL,
    since_at     BIGINT  NOT NULL,
    last_due_at  BIGINT,
    PRIMARY KEY (repo_id, name)
);

-- One row per fire. The insert is the claim of that due time: the unique key makes a second
-- claim (another replica, a restart) fail, so each due time opens at most one issue.
CREATE TABLE schedule_fires (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id       BIGINT  NOT NULL REFERENCES repositories (id),
    name          TEXT    NOT NULL,
    due_at        BIGINT  NOT NULL,
    fired_at      BIGINT  NOT NULL,
    manual        BIGINT  NOT NULL DEFAULT 0,   -- 1: "run now", not the cron
    issue_number  BIGINT,                       -- set once the forge opened the issue
    error         TEXT,                         -- why the forge did not
    UNIQUE (repo_id, name, due_at)
);
CREATE INDEX schedule_fires_recent ON schedule_fires (repo_id, name, fired_at);
CREATE INDEX schedule_fires_issue ON schedule_fires (repo_id, issue_number);
