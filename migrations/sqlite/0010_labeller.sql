-- Who moved each ticket into its status, for the trigger policy. Keep in step with migrations/postgres.

-- `labeller_status` names the status the other two columns are about; once the ticket's status
-- differs, they say nothing. `labeller_source`: `delivery` (the `labeled` delivery of that
-- status's label), `events` (the forge's issue events / timeline) or `forgehand` (Forgehand
-- moved it itself; `labeller` is then NULL).
ALTER TABLE tickets ADD COLUMN labeller_status TEXT;
ALTER TABLE tickets ADD COLUMN labeller TEXT;
ALTER TABLE tickets ADD COLUMN labeller_source TEXT;

-- The sender of whatever delivery came last, which is not who added the label.
ALTER TABLE tickets DROP COLUMN label_actor;
