-- Claim passes that cost what changed, and delivery retention. Keep in step with migrations/sqlite.

-- When a claim pass must next evaluate the ticket: 0 = at the next pass (its facts changed),
-- a time (ms) = a wait to look at again then, NULL = only when its facts change.
-- `claim_mark` counts the changes, so a pass that evaluated an older state does not settle a
-- ticket that changed meanwhile.
ALTER TABLE tickets ADD COLUMN claim_due BIGINT DEFAULT 0;
ALTER TABLE tickets ADD COLUMN claim_mark BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tickets_claim_due ON tickets (claim_due, id) WHERE claim_due IS NOT NULL;

-- Retention finds the finished deliveries past their time; pending ones stay out of the index
-- (intake inserts no entry).
CREATE INDEX deliveries_done ON deliveries (outcome, processed_at) WHERE processed_at IS NOT NULL;
