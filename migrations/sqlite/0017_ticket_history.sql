-- What happened to a ticket on the forge, for its page's timeline: labels added and removed,
-- pull requests opened, merged and closed, reviews, settled checks, comment commands. `source`
-- names the source (delivery and kind), so a delivery processed twice adds no second row.
-- Keep in step with the other backend.
CREATE TABLE ticket_history (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    at        BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    actor     TEXT   NOT NULL,   -- who did it, '' when the forge does not say
    subject   TEXT   NOT NULL,   -- the label, pull request (#N), check or commands
    detail    TEXT   NOT NULL,   -- added/removed, opened/merged/closed, the verdict or conclusion
    url       TEXT,
    source    TEXT   NOT NULL,
    UNIQUE (ticket_id, source)
);
CREATE INDEX ticket_history_at ON ticket_history (ticket_id, at);
