-- The claim mark at which a ticket's wait was last decided (`claim_marks`). A ticket waiting on
-- a limit whose mark moved only because a run ended (`mark_waiting` moves both) is re-checked
-- against the limits alone; any other change to it moves only the ticket's mark, and it is
-- evaluated in full. Keep in step with the other backend's migration.
ALTER TABLE ticket_waits ADD COLUMN mark BIGINT;
