-- The board's column counts with a workflow or agent filter, kept by triggers as the unfiltered
-- ones are (0016), so a filtered board reads one row per status too. Keep in step with
-- migrations/sqlite.

-- Which filters a ticket matches: one row per distinct (workflow, agent) of its runs, plus
-- (workflow, '') and ('', agent), '' standing for "any" (names are never empty). A filter
-- with a workflow, an agent or both is one primary-key probe here.
CREATE TABLE ticket_filter_keys (
    ticket_id BIGINT NOT NULL,
    workflow  TEXT   NOT NULL,
    agent     TEXT   NOT NULL,
    PRIMARY KEY (ticket_id, workflow, agent)
);
-- Live tickets with a status per (repository, status, filter key).
CREATE TABLE board_filter_counts (
    repo_id  BIGINT NOT NULL,
    status   TEXT   NOT NULL,
    workflow TEXT   NOT NULL,
    agent    TEXT   NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (repo_id, workflow, agent, status)
);

INSERT INTO ticket_filter_keys (ticket_id, workflow, agent)
SELECT DISTINCT ticket_id, workflow, agent FROM runs
UNION SELECT DISTINCT ticket_id, workflow, '' FROM runs
UNION SELECT DISTINCT ticket_id, '', agent FROM runs;
INSERT INTO board_filter_counts (repo_id, status, workflow, agent, n)
SELECT t.repo_id, t.status, k.workflow, k.agent, COUNT(*)
FROM ticket_filter_keys k JOIN tickets t ON t.id = k.ticket_id
WHERE t.deleted = 0 AND t.status IS NOT NULL
GROUP BY t.repo_id, t.status, k.workflow, k.agent;

-- A key appears with a ticket's first run of its kind, and counts where the ticket stands.
CREATE FUNCTION ticket_filter_keys_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO board_filter_counts AS c (repo_id, status, workflow, agent, n)
        SELECT t.repo_id, t.status, NEW.workflow, NEW.agent, 1 FROM tickets t
        WHERE t.id = NEW.ticket_id AND t.deleted = 0 AND t.status IS NOT NULL
        ON CONFLICT (repo_id, workflow, agent, status) DO UPDATE SET n = c.n + 1;
    ELSE
        UPDATE board_filter_counts c SET n = c.n - 1 FROM tickets t
        WHERE t.id = OLD.ticket_id AND t.deleted = 0 AND t.status IS NOT NULL
          AND c.repo_id = t.repo_id AND c.status = t.status
          AND c.workflow = OLD.workflow AND c.agent = OLD.agent;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ticket_filter_keys_counted AFTER INSERT OR DELETE ON ticket_filter_keys
    FOR EACH ROW EXECUTE FUNCTION ticket_filter_keys_apply();

-- (Runs are not deleted today; should they be, a key goes with the ticket's last run of it.)
CREATE FUNCTION ticket_filter_keys_of_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ticket_filter_keys (ticket_id, workflow, agent) VALUES
            (NEW.ticket_id, NEW.workflow, NEW.agent),
            (NEW.ticket_id, NEW.workflow, ''),
            (NEW.ticket_id, '', NEW.agent)
        ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM ticket_filter_keys WHERE ticket_id = OLD.ticket_id AND (
            (workflow = OLD.workflow AND agent = OLD.agent AND NOT EXISTS (SELECT 1 FROM runs r
                WHERE r.ticket_id = OLD.ticket_id AND r.workflow = OLD.workflow AND r.agent = OLD.agent))
         OR (workflow = OLD.workflow AND agent = '' AND NOT EXISTS (SELECT 1 FROM runs r
                WHERE r.ticket_id = OLD.ticket_id AND r.workflow = OLD.workflow))
         OR (workflow = '' AND agent = OLD.agent AND NOT EXISTS (SELECT 1 FROM runs r
                WHERE r.ticket_id = OLD.ticket_id AND r.agent = OLD.agent)));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ticket_filter_keys_of_runs AFTER INSERT OR DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION ticket_filter_keys_of_runs();

-- A ticket that moves takes its keys' counts along. Only a real change counts: most updates
-- (every mirrored snapshot) write the same repository, status and deleted flag again.
CREATE FUNCTION board_filter_counts_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.repo_id IS NOT DISTINCT FROM NEW.repo_id
       AND OLD.status IS NOT DISTINCT FROM NEW.status AND OLD.deleted = NEW.deleted THEN
        RETURN NULL;
    END IF;
    IF OLD.deleted = 0 AND OLD.status IS NOT NULL THEN
        UPDATE board_filter_counts c SET n = c.n - 1 FROM ticket_filter_keys k
        WHERE k.ticket_id = OLD.id AND c.repo_id = OLD.repo_id AND c.status = OLD.status
          AND c.workflow = k.workflow AND c.agent = k.agent;
    END IF;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM ticket_filter_keys WHERE ticket_id = OLD.id;
    ELSIF NEW.deleted = 0 AND NEW.status IS NOT NULL THEN
        INSERT INTO board_filter_counts AS c (repo_id, status, workflow, agent, n)
        SELECT NEW.repo_id, NEW.status, k.workflow, k.agent, 1 FROM ticket_filter_keys k
        WHERE k.ticket_id = NEW.id
        ON CONFLICT (repo_id, workflow, agent, status) DO UPDATE SET n = c.n + 1;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER board_filter_counts_ticket AFTER DELETE OR UPDATE OF repo_id, status, deleted
    ON tickets FOR EACH ROW EXECUTE FUNCTION board_filter_counts_ticket();

-- The unfiltered counts' trigger (0016) fired on every mirrored snapshot, taking the ticket out
-- and putting it back: now only when the repository, status or deleted flag changes.
DROP TRIGGER ticket_status_counts ON tickets;
CREATE TRIGGER ticket_status_counts_inserted_deleted AFTER INSERT OR DELETE
    ON tickets FOR EACH ROW EXECUTE FUNCTION ticket_status_counts_apply();
CREATE TRIGGER ticket_status_counts_moved AFTER UPDATE OF repo_id, status, deleted ON tickets
    FOR EACH ROW
    WHEN (OLD.repo_id IS DISTINCT FROM NEW.repo_id OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.deleted IS DISTINCT FROM NEW.deleted)
    EXECUTE FUNCTION ticket_status_counts_apply();
