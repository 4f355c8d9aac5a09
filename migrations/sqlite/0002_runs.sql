-- Agent runs. Keep in step with migrations/postgres.

ALTER TABLE tickets ADD COLUMN label_actor TEXT;            -- who last changed the issue (delivery sender)
ALTER TABLE tickets ADD COLUMN progress_comment_id BIGINT;  -- the one comment Forgehand edits in place
ALTER TABLE tickets ADD COLUMN branch TEXT;                 -- the work branch, once named

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id        BIGINT  NOT NULL REFERENCES tickets (id),
    workflow         TEXT    NOT NULL,
    agent            TEXT    NOT NULL,
    config_version   BIGINT  NOT NULL,  -- the pinned config version number
    pickup_status    TEXT    NOT NULL,
    started_status   TEXT    NOT NULL,
    attempt          BIGINT  NOT NULL,
    state            TEXT    NOT NULL,  -- queued | running | succeeded | failed | canceled
    not_before       BIGINT  NOT NULL,  -- retry backoff: not started earlier
    lease_owner      TEXT,
    lease_until      BIGINT,
    pid              BIGINT,            -- the agent process group, to stop it after a server crash
    cancel_requested BIGINT  NOT NULL DEFAULT 0,
    cancel_reason    TEXT,
    token_hash       TEXT,              -- sha256 of the run's callback token
    session_id       TEXT,              -- the agent CLI's session, to resume
    turns            BIGINT  NOT NULL DEFAULT 0,
    finish_status    TEXT,              -- chosen by the agent through the callback API
    error            TEXT,
    input_tokens     BIGINT  NOT NULL DEFAULT 0,
    output_tokens    BIGINT  NOT NULL DEFAULT 0,
    cost_usd         REAL    NOT NULL DEFAULT 0,
    pull_number      BIGINT,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
-- The claim invariant, enforced by the database itself: at most one run in flight per ticket,
-- whatever number of claimers race.
CREATE UNIQUE INDEX runs_one_in_flight ON runs (ticket_id) WHERE state IN ('queued', 'running');
CREATE INDEX runs_by_state ON runs (state, not_before);
CREATE INDEX runs_by_ticket ON runs (ticket_id, id);

CREATE TABLE run_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT  NOT NULL REFERENCES runs (id),
    seq    BIGINT  NOT NULL,
    turn   BIGINT  NOT NULL,
    at     BIGINT  NOT NULL,
    data   TEXT    NOT NULL,                -- one normalized AgentEvent as JSON
    UNIQUE (run_id, seq)
);
