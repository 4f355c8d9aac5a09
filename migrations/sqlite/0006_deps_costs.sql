-- Dependencies, pickup diagnosis, budgets and cost accounting. Keep in step with the other backend.

-- The per-run token breakdown beyond input/output (cost is priced from it when the CLI
-- reports tokens but no cost).
ALTER TABLE runs ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;

-- Why a ticket in a pickup status is still waiting, since when, and which reason was last
-- posted in its progress comment (posted once it lasts, updated when it changes).
CREATE TABLE ticket_waits (
    ticket_id BIGINT NOT NULL PRIMARY KEY REFERENCES tickets (id),
    code      TEXT   NOT NULL,
    message   TEXT   NOT NULL,
    since     BIGINT NOT NULL,
    posted    TEXT
);

-- The last time the trigger policy reverted a ticket's status label, and why: the diagnosis
-- of a ticket without a status.
CREATE TABLE trigger_refusals (
    ticket_id BIGINT NOT NULL PRIMARY KEY REFERENCES tickets (id),
    actor     TEXT   NOT NULL,
    reason    TEXT   NOT NULL,
    at        BIGINT NOT NULL
);
