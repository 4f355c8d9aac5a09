-- The board's column counts with a workflow or agent filter, kept by triggers as the unfiltered
-- ones are (0016), so a filtered board reads one row per status too. Keep in step with
-- migrations/postgres.

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
CREATE TRIGGER ticket_filter_keys_inserted AFTER INSERT ON ticket_filter_keys
BEGIN
    INSERT INTO board_filter_counts (repo_id, status, workflow, agent, n)
    SELECT t.repo_id, t.status, NEW.workflow, NEW.agent, 1 FROM tickets t
    WHERE t.id = NEW.ticket_id AND t.deleted = 0 AND t.status IS NOT NULL
    ON CONFLICT (repo_id, workflow, agent, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER ticket_filter_keys_deleted AFTER DELETE ON ticket_filter_keys
BEGIN
    UPDATE board_filter_counts SET n = n - 1
    WHERE workflow = OLD.workflow AND agent = OLD.agent AND (repo_id, status) IN
        (SELECT t.repo_id, t.status FROM tickets t
         WHERE t.id = OLD.ticket_id AND t.deleted = 0 AND t.status IS NOT NULL);
END;

CREATE TRIGGER ticket_filter_keys_run_inserted AFTER INSERT ON runs
BEGIN
    INSERT OR IGNORE INTO ticket_filter_keys (ticket_id, workflow, agent) VALUES
        (NEW.ticket_id, NEW.workflow, NEW.agent),
        (NEW.ticket_id, NEW.workflow, ''),
        (NEW.ticket_id, '', NEW.agent);
END;

-- (Runs are not deleted today; should they be, a key goes with the ticket's last run of it.)
CREATE TRIGGER ticket_filter_keys_run_deleted AFTER DELETE ON runs
BEGIN
    DELETE FROM ticket_filter_keys WHERE ticket_id = OLD.ticket_id AND (
        (workflow = OLD.workflow AND agent = OLD.agent AND NOT EXISTS (SELECT 1 FROM runs r
            WHERE r.ticket_id = OLD.ticket_id AND r.workflow = OLD.workflow AND r.agent = OLD.agent))
     OR (workflow = OLD.workflow AND agent = '' AND NOT EXISTS (SELECT 1 FROM runs r
            WHERE r.ticket_id = OLD.ticket_id AND r.workflow = OLD.workflow))
     OR (workflow = '' AND agent = OLD.agent AND NOT EXISTS (SELECT 1 FROM runs r
            WHERE r.ticket_id = OLD.ticket_id AND r.agent = OLD.agent)));
END;

-- A ticket that moves takes its keys' counts along. Only a real change counts: most updates
-- (every mirrored snapshot) write the same repository, status and deleted flag again.
CREATE TRIGGER board_filter_counts_ticket_moved AFTER UPDATE OF repo_id, status, deleted ON tickets
WHEN OLD.repo_id IS NOT NEW.repo_id OR OLD.status IS NOT NEW.status OR OLD.deleted IS NOT NEW.deleted
BEGIN
    UPDATE board_filter_counts SET n = n - 1
    WHERE OLD.deleted = 0 AND OLD.status IS NOT NULL
      AND repo_id = OLD.repo_id AND status = OLD.status AND (workflow, agent) IN
        (SELECT k.workflow, k.agent FROM ticket_filter_keys k WHERE k.ticket_id = OLD.id);
    INSERT INTO board_filter_counts (repo_id, status, workflow, agent, n)
    SELECT NEW.repo_id, NEW.status, k.workflow, k.agent, 1 FROM ticket_filter_keys k
    WHERE k.ticket_id = NEW.id AND NEW.deleted = 0 AND NEW.status IS NOT NULL
    ON CONFLICT (repo_id, workflow, agent, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER board_filter_counts_ticket_deleted AFTER DELETE ON tickets
BEGIN
    UPDATE board_filter_counts SET n = n - 1
    WHERE OLD.deleted = 0 AND OLD.status IS NOT NULL
      AND repo_id = OLD.repo_id AND status = OLD.status AND (workflow, agent) IN
        (SELECT k.workflow, k.agent FROM ticket_filter_keys k WHERE k.ticket_id = OLD.id);
    DELETE FROM ticket_filter_keys WHERE ticket_id = OLD.id;
END;

-- The unfiltered counts' update triggers (0016) fired on every mirrored snapshot, taking the
-- ticket out and putting it back: now only when the repository, status or deleted flag changes.
DROP TRIGGER ticket_status_counts_take_old;
DROP TRIGGER ticket_status_counts_put_new;
CREATE TRIGGER ticket_status_counts_take_old AFTER UPDATE OF repo_id, status, deleted ON tickets
WHEN OLD.deleted = 0 AND OLD.status IS NOT NULL
 AND (OLD.repo_id IS NOT NEW.repo_id OR OLD.status IS NOT NEW.status OR OLD.deleted IS NOT NEW.deleted)
BEGIN
    UPDATE ticket_status_counts SET n = n - 1 WHERE repo_id = OLD.repo_id AND status = OLD.status;
END;
CREATE TRIGGER ticket_status_counts_put_new AFTER UPDATE OF repo_id, status, deleted ON tickets
WHEN NEW.deleted = 0 AND NEW.status IS NOT NULL
 AND (OLD.repo_id IS NOT NEW.repo_id OR OLD.status IS NOT NEW.status OR OLD.deleted IS NOT NEW.deleted)
BEGIN
    INSERT INTO ticket_status_counts (repo_id, status, n) VALUES (NEW.repo_id, NEW.status, 1)
    ON CONFLICT (repo_id, status) DO UPDATE SET n = n + 1;
END;
