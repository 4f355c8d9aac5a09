-- The overview's, agents page's and workflows page's figures kept by triggers, so a page view
-- reads a few rows instead of scanning tickets or a week of runs (issue #13). Keep in step with
-- migrations/postgres.

-- Open tickets per status, every repository ('' = no status label), for the overview.
CREATE TABLE open_status_counts (
    status TEXT   NOT NULL PRIMARY KEY,
    n      BIGINT NOT NULL
);
-- Open tickets per repository and pinned config version (0 = not pinned yet; versions count
-- from 1), for the workflows page.
CREATE TABLE open_pin_counts (
    repo_id        BIGINT NOT NULL,
    pinned_version BIGINT NOT NULL,
    n              BIGINT NOT NULL,
    PRIMARY KEY (repo_id, pinned_version)
);
INSERT INTO open_status_counts (status, n)
SELECT COALESCE(status, ''), COUNT(*) FROM tickets WHERE deleted = 0 AND state = 'open'
GROUP BY COALESCE(status, '');
INSERT INTO open_pin_counts (repo_id, pinned_version, n)
SELECT repo_id, COALESCE(pinned_version, 0), COUNT(*) FROM tickets
WHERE deleted = 0 AND state = 'open' GROUP BY repo_id, COALESCE(pinned_version, 0);

CREATE TRIGGER open_counts_ticket_inserted AFTER INSERT ON tickets
WHEN NEW.deleted = 0 AND NEW.state = 'open'
BEGIN
    INSERT INTO open_status_counts (status, n) VALUES (COALESCE(NEW.status, ''), 1)
    ON CONFLICT (status) DO UPDATE SET n = n + 1;
    INSERT INTO open_pin_counts (repo_id, pinned_version, n)
    VALUES (NEW.repo_id, COALESCE(NEW.pinned_version, 0), 1)
    ON CONFLICT (repo_id, pinned_version) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER open_counts_ticket_deleted AFTER DELETE ON tickets
WHEN OLD.deleted = 0 AND OLD.state = 'open'
BEGIN
    UPDATE open_status_counts SET n = n - 1 WHERE status = COALESCE(OLD.status, '');
    UPDATE open_pin_counts SET n = n - 1
    WHERE repo_id = OLD.repo_id AND pinned_version = COALESCE(OLD.pinned_version, 0);
END;

-- An update takes the old row out, then (below) puts the new one in; only a real change counts
-- (most updates, every mirrored snapshot, write the same values again).
CREATE TRIGGER open_counts_ticket_take_old
AFTER UPDATE OF repo_id, status, state, deleted, pinned_version ON tickets
WHEN OLD.deleted = 0 AND OLD.state = 'open'
 AND (OLD.repo_id IS NOT NEW.repo_id OR OLD.status IS NOT NEW.status OR OLD.state IS NOT NEW.state
      OR OLD.deleted IS NOT NEW.deleted OR OLD.pinned_version IS NOT NEW.pinned_version)
BEGIN
    UPDATE open_status_counts SET n = n - 1 WHERE status = COALESCE(OLD.status, '');
    UPDATE open_pin_counts SET n = n - 1
    WHERE repo_id = OLD.repo_id AND pinned_version = COALESCE(OLD.pinned_version, 0);
END;
CREATE TRIGGER open_counts_ticket_put_new
AFTER UPDATE OF repo_id, status, state, deleted, pinned_version ON tickets
WHEN NEW.deleted = 0 AND NEW.state = 'open'
 AND (OLD.repo_id IS NOT NEW.repo_id OR OLD.status IS NOT NEW.status OR OLD.state IS NOT NEW.state
      OR OLD.deleted IS NOT NEW.deleted OR OLD.pinned_version IS NOT NEW.pinned_version)
BEGIN
    INSERT INTO open_status_counts (status, n) VALUES (COALESCE(NEW.status, ''), 1)
    ON CONFLICT (status) DO UPDATE SET n = n + 1;
    INSERT INTO open_pin_counts (repo_id, pinned_version, n)
    VALUES (NEW.repo_id, COALESCE(NEW.pinned_version, 0), 1)
    ON CONFLICT (repo_id, pinned_version) DO UPDATE SET n = n + 1;
END;

-- Finished runs per day they finished (days since the epoch, UTC), agent profile and state,
-- for the agents page.
CREATE TABLE run_agent_totals (
    day      BIGINT NOT NULL,
    agent    TEXT   NOT NULL,
    state    TEXT   NOT NULL,
    runs     BIGINT NOT NULL,
    cost_usd REAL   NOT NULL,
    PRIMARY KEY (day, agent, state)
);
-- Runs that succeeded with a pull request, per day they finished and whole minutes from claim
-- to finish: the overview finds the minute holding the median here, then reads that minute's
-- runs through `runs_pull_minutes` for the exact figure.
CREATE TABLE run_pull_minutes (
    day    BIGINT NOT NULL,
    minute BIGINT NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (day, minute)
);
CREATE INDEX runs_pull_minutes ON runs ((finished_at - created_at) / 60000, finished_at)
WHERE state = 'succeeded' AND pull_number IS NOT NULL;

INSERT INTO run_agent_totals (day, agent, state, runs, cost_usd)
SELECT finished_at / 86400000, agent, state, COUNT(*), SUM(cost_usd) FROM runs
WHERE finished_at IS NOT NULL GROUP BY finished_at / 86400000, agent, state;
INSERT INTO run_pull_minutes (day, minute, n)
SELECT finished_at / 86400000, (finished_at - created_at) / 60000, COUNT(*) FROM runs
WHERE finished_at IS NOT NULL AND state = 'succeeded' AND pull_number IS NOT NULL
GROUP BY finished_at / 86400000, (finished_at - created_at) / 60000;

CREATE TRIGGER run_agent_totals_inserted AFTER INSERT ON runs WHEN NEW.finished_at IS NOT NULL
BEGIN
    INSERT INTO run_agent_totals (day, agent, state, runs, cost_usd)
    VALUES (NEW.finished_at / 86400000, NEW.agent, NEW.state, 1, NEW.cost_usd)
    ON CONFLICT (day, agent, state) DO UPDATE SET runs = runs + 1,
        cost_usd = cost_usd + excluded.cost_usd;
END;
CREATE TRIGGER run_agent_totals_deleted AFTER DELETE ON runs WHEN OLD.finished_at IS NOT NULL
BEGIN
    UPDATE run_agent_totals SET runs = runs - 1, cost_usd = cost_usd - OLD.cost_usd
    WHERE day = OLD.finished_at / 86400000 AND agent = OLD.agent AND state = OLD.state;
END;
CREATE TRIGGER run_agent_totals_take_old AFTER UPDATE OF finished_at, agent, state, cost_usd
ON runs WHEN OLD.finished_at IS NOT NULL
BEGIN
    UPDATE run_agent_totals SET runs = runs - 1, cost_usd = cost_usd - OLD.cost_usd
    WHERE day = OLD.finished_at / 86400000 AND agent = OLD.agent AND state = OLD.state;
END;
CREATE TRIGGER run_agent_totals_put_new AFTER UPDATE OF finished_at, agent, state, cost_usd
ON runs WHEN NEW.finished_at IS NOT NULL
BEGIN
    INSERT INTO run_agent_totals (day, agent, state, runs, cost_usd)
    VALUES (NEW.finished_at / 86400000, NEW.agent, NEW.state, 1, NEW.cost_usd)
    ON CONFLICT (day, agent, state) DO UPDATE SET runs = runs + 1,
        cost_usd = cost_usd + excluded.cost_usd;
END;

CREATE TRIGGER run_pull_minutes_inserted AFTER INSERT ON runs
WHEN NEW.finished_at IS NOT NULL AND NEW.state = 'succeeded' AND NEW.pull_number IS NOT NULL
BEGIN
    INSERT INTO run_pull_minutes (day, minute, n)
    VALUES (NEW.finished_at / 86400000, (NEW.finished_at - NEW.created_at) / 60000, 1)
    ON CONFLICT (day, minute) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER run_pull_minutes_deleted AFTER DELETE ON runs
WHEN OLD.finished_at IS NOT NULL AND OLD.state = 'succeeded' AND OLD.pull_number IS NOT NULL
BEGIN
    UPDATE run_pull_minutes SET n = n - 1
    WHERE day = OLD.finished_at / 86400000 AND minute = (OLD.finished_at - OLD.created_at) / 60000;
END;
CREATE TRIGGER run_pull_minutes_take_old
AFTER UPDATE OF finished_at, created_at, state, pull_number ON runs
WHEN OLD.finished_at IS NOT NULL AND OLD.state = 'succeeded' AND OLD.pull_number IS NOT NULL
BEGIN
    UPDATE run_pull_minutes SET n = n - 1
    WHERE day = OLD.finished_at / 86400000 AND minute = (OLD.finished_at - OLD.created_at) / 60000;
END;
CREATE TRIGGER run_pull_minutes_put_new
AFTER UPDATE OF finished_at, created_at, state, pull_number ON runs
WHEN NEW.finished_at IS NOT NULL AND NEW.state = 'succeeded' AND NEW.pull_number IS NOT NULL
BEGIN
    INSERT INTO run_pull_minutes (day, minute, n)
    VALUES (NEW.finished_at / 86400000, (NEW.finished_at - NEW.created_at) / 60000, 1)
    ON CONFLICT (day, minute) DO UPDATE SET n = n + 1;
END;
