-- Forgehand schema, SQLite flavour. Keep in step with migrations/postgres.
-- Times are Unix milliseconds.
-- Flags are BIGINT 0/1 rather than BOOLEAN: one type that both backends decode alike.

CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    forge        TEXT    NOT NULL,
    delivery_id  TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    body         BLOB    NOT NULL,
    outcome      TEXT    NOT NULL DEFAULT 'pending', -- pending | processed | ignored | failed
    reason       TEXT,
    processed_at BIGINT,
    UNIQUE (forge, delivery_id)
);
CREATE INDEX deliveries_pending ON deliveries (id) WHERE outcome = 'pending';

CREATE TABLE repositories (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    forge             TEXT    NOT NULL,
    owner             TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    default_branch    TEXT    NOT NULL,
    clone_url         TEXT    NOT NULL,
    html_url          TEXT    NOT NULL,
    first_seen_at     BIGINT  NOT NULL,
    sync_requested_at BIGINT,            -- a config sync is wanted since then
    sync_error        TEXT,              -- why the last sync could not read the tree
    UNIQUE (forge, owner, name)
);

CREATE TABLE tickets (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id          BIGINT  NOT NULL REFERENCES repositories (id),
    number           BIGINT  NOT NULL,
    title            TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    state            TEXT    NOT NULL,   -- open | closed
    labels           TEXT    NOT NULL,   -- JSON array of label names
    author           TEXT    NOT NULL,
    html_url         TEXT    NOT NULL,
    status           TEXT,               -- status name from the status label
    deleted          BIGINT  NOT NULL DEFAULT 0,
    pinned_version   BIGINT,
    forge_updated_at BIGINT  NOT NULL,   -- the issue's own updated_at: stale payloads lose
    needs_reconcile  BIGINT  NOT NULL DEFAULT 0,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    UNIQUE (repo_id, number)
);
CREATE INDEX tickets_by_status ON tickets (repo_id, status);
CREATE INDEX tickets_to_reconcile ON tickets (id) WHERE needs_reconcile = 1;

CREATE TABLE pull_requests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id          BIGINT  NOT NULL REFERENCES repositories (id),
    number           BIGINT  NOT NULL,
    title            TEXT    NOT NULL,
    state            TEXT    NOT NULL,   -- open | closed | merged
    head_ref         TEXT    NOT NULL,
    head_sha         TEXT    NOT NULL,
    base_ref         TEXT    NOT NULL,
    author           TEXT    NOT NULL,
    html_url         TEXT    NOT NULL,
    closes_issue     BIGINT,             -- the issue it closes ("Closes #N" or our branch name)
    forge_updated_at BIGINT  NOT NULL,
    UNIQUE (repo_id, number)
);
CREATE INDEX pull_requests_by_issue ON pull_requests (repo_id, closes_issue);

CREATE TABLE comments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id      BIGINT  NOT NULL REFERENCES repositories (id),
    issue_number BIGINT  NOT NULL,
    forge_id     BIGINT  NOT NULL,
    author       TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    UNIQUE (repo_id, forge_id)
);
CREATE INDEX comments_by_issue ON comments (repo_id, issue_number);

CREATE TABLE config_versions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id      BIGINT  NOT NULL REFERENCES repositories (id),
    number       BIGINT  NOT NULL,
    commit_sha   TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    UNIQUE (repo_id, number)
);

CREATE TABLE config_files (
    version_id BIGINT NOT NULL REFERENCES config_versions (id),
    path       TEXT   NOT NULL,
    content    BLOB   NOT NULL,
    PRIMARY KEY (version_id, path)
);

CREATE TABLE config_rejections (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id      BIGINT  NOT NULL REFERENCES repositories (id),
    commit_sha   TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    errors       TEXT    NOT NULL,       -- JSON array of {file, line, message}
    created_at   BIGINT  NOT NULL
);
CREATE INDEX config_rejections_by_repo ON config_rejections (repo_id, id);
