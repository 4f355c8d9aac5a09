-- Merge only what the gates passed. Keep in step with the other backend.

-- The head commit each gate stage (`on_complete`, `before_merge`) of a ticket last passed on,
-- under which workflow and pinned config version: a pull request is merged only on that commit,
-- and a head that moved is gated again before anything else.
CREATE TABLE gate_passes (
    ticket_id      BIGINT NOT NULL REFERENCES tickets (id),
    stage          TEXT   NOT NULL,
    workflow       TEXT   NOT NULL,
    config_version BIGINT NOT NULL,
    head_sha       TEXT   NOT NULL,
    passed_at      BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, stage)
);

-- Merges the forge refused on a head that did not move: attempts so far, when the next may
-- be sent, and the forge's reason (said once on the issue).
CREATE TABLE merge_refusals (
    ticket_id BIGINT NOT NULL PRIMARY KEY REFERENCES tickets (id),
    head_sha  TEXT   NOT NULL,
    attempts  BIGINT NOT NULL,
    retry_at  BIGINT NOT NULL,
    reason    TEXT   NOT NULL
);
