-- Conversation with Forgehand on issues and pull requests. Keep in step with migrations/postgres.

-- Comments on a ticket's pull request given to the agent: line comments (`line`, with their
-- place in the diff) and conversation comments addressed to Forgehand (`conversation`), each
-- once. `run_id` is the run whose prompt carried it; `replied` whether Forgehand answered it
-- in its thread after that run pushed.
CREATE TABLE review_comments (
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id),
    kind        TEXT   NOT NULL,
    forge_id    BIGINT NOT NULL,
    author      TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    path        TEXT   NOT NULL,
    line        BIGINT,
    diff_hunk   TEXT   NOT NULL,
    in_reply_to BIGINT,
    html_url    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    run_id      BIGINT,
    replied     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (ticket_id, kind, forge_id)
);

-- Comments asking something of Forgehand (`/forgehand …` commands, `@forgehand …` mentions),
-- recorded once per comment from its `created` delivery (a replayed delivery finds it there)
-- and acted on by the engine; `outcome` says what was done.
CREATE TABLE comment_requests (
    repo_id      BIGINT NOT NULL REFERENCES repositories (id),
    forge_id     BIGINT NOT NULL,
    issue_number BIGINT NOT NULL,
    author       TEXT   NOT NULL,
    body         TEXT   NOT NULL,
    html_url     TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    done_at      BIGINT,
    outcome      TEXT,
    PRIMARY KEY (repo_id, forge_id)
);
CREATE INDEX comment_requests_pending ON comment_requests (done_at);

-- The comment that started a run, when one did (linked from the run page and the progress
-- comment): kept on the ticket until its next run starts, then on that run.
ALTER TABLE tickets ADD COLUMN start_comment TEXT;
ALTER TABLE runs ADD COLUMN started_by_comment TEXT;
