-- Claim passes that cost what changed, and delivery retention. Keep in step with migrations/postgres.

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

-- The dashboard overview's figures, kept by the database as runs finish (and should a finished
-- run's figures change), so a page view reads a few rows instead of scanning runs. A finished
-- run (finished_at set) counts in `run_day_totals` on the day it finished, in `run_cost_totals`
-- on the day it started (its cost accounting), per repository and agent.
CREATE TABLE run_day_totals (
    day      BIGINT NOT NULL,   -- days since the epoch, UTC
    state    TEXT   NOT NULL,
    runs     BIGINT NOT NULL,
    cost_usd REAL   NOT NULL,
    tokens   BIGINT NOT NULL,   -- input + output
    PRIMARY KEY (day, state)
);
CREATE TABLE run_cost_totals (
    day                BIGINT NOT NULL,
    repo_id            BIGINT NOT NULL,
    agent              TEXT   NOT NULL,
    runs               BIGINT NOT NULL,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cache_read_tokens  BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_usd           REAL   NOT NULL,
    PRIMARY KEY (day, repo_id, agent)
);

INSERT INTO run_day_totals (day, state, runs, cost_usd, tokens)
SELECT finished_at / 86400000, state, COUNT(*), SUM(cost_usd), SUM(input_tokens + output_tokens)
FROM runs WHERE finished_at IS NOT NULL GROUP BY finished_at / 86400000, state;
INSERT INTO run_cost_totals (day, repo_id, agent, runs, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd)
SELECT COALESCE(u.started_at, u.created_at) / 86400000, t.repo_id, u.agent, COUNT(*),
    SUM(u.input_tokens), SUM(u.output_tokens), SUM(u.cache_read_tokens),
    SUM(u.cache_write_tokens), SUM(u.reasoning_tokens), SUM(u.cost_usd)
FROM runs u JOIN tickets t ON t.id = u.ticket_id WHERE u.finished_at IS NOT NULL
GROUP BY COALESCE(u.started_at, u.created_at) / 86400000, t.repo_id, u.agent;

CREATE TRIGGER run_totals_add_inserted AFTER INSERT ON runs WHEN NEW.finished_at IS NOT NULL
BEGIN
    INSERT INTO run_day_totals (day, state, runs, cost_usd, tokens)
    VALUES (NEW.finished_at / 86400000, NEW.state, 1, NEW.cost_usd,
            NEW.input_tokens + NEW.output_tokens)
    ON CONFLICT (day, state) DO UPDATE SET runs = runs + 1,
        cost_usd = cost_usd + excluded.cost_usd, tokens = tokens + excluded.tokens;
    INSERT INTO run_cost_totals (day, repo_id, agent, runs, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd)
    SELECT COALESCE(NEW.started_at, NEW.created_at) / 86400000, t.repo_id, NEW.agent, 1,
        NEW.input_tokens, NEW.output_tokens, NEW.cache_read_tokens, NEW.cache_write_tokens,
        NEW.reasoning_tokens, NEW.cost_usd
    FROM tickets t WHERE t.id = NEW.ticket_id
    ON CONFLICT (day, repo_id, agent) DO UPDATE SET runs = runs + 1,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
        cost_usd = cost_usd + excluded.cost_usd;
END;

-- An update of a finished run takes its old figures out, then (below) puts the new ones in.
CREATE TRIGGER run_totals_take_old AFTER UPDATE OF finished_at, state, started_at, created_at,
    agent, ticket_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    reasoning_tokens, cost_usd ON runs WHEN OLD.finished_at IS NOT NULL
BEGIN
    UPDATE run_day_totals SET runs = runs - 1, cost_usd = cost_usd - OLD.cost_usd,
        tokens = tokens - (OLD.input_tokens + OLD.output_tokens)
    WHERE day = OLD.finished_at / 86400000 AND state = OLD.state;
    UPDATE run_cost_totals SET runs = runs - 1,
        input_tokens = input_tokens - OLD.input_tokens,
        output_tokens = output_tokens - OLD.output_tokens,
        cache_read_tokens = cache_read_tokens - OLD.cache_read_tokens,
        cache_write_tokens = cache_write_tokens - OLD.cache_write_tokens,
        reasoning_tokens = reasoning_tokens - OLD.reasoning_tokens,
        cost_usd = cost_usd - OLD.cost_usd
    WHERE day = COALESCE(OLD.started_at, OLD.created_at) / 86400000 AND agent = OLD.agent
      AND repo_id = (SELECT repo_id FROM tickets WHERE id = OLD.ticket_id);
END;

CREATE TRIGGER run_totals_put_new AFTER UPDATE OF finished_at, state, started_at, created_at,
    agent, ticket_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    reasoning_tokens, cost_usd ON runs WHEN NEW.finished_at IS NOT NULL
BEGIN
    INSERT INTO run_day_totals (day, state, runs, cost_usd, tokens)
    VALUES (NEW.finished_at / 86400000, NEW.state, 1, NEW.cost_usd,
            NEW.input_tokens + NEW.output_tokens)
    ON CONFLICT (day, state) DO UPDATE SET runs = runs + 1,
        cost_usd = cost_usd + excluded.cost_usd, tokens = tokens + excluded.tokens;
    INSERT INTO run_cost_totals (day, repo_id, agent, runs, input_tokens, output_tokens,
        cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd)
    SELECT COALESCE(NEW.started_at, NEW.created_at) / 86400000, t.repo_id, NEW.agent, 1,
        NEW.input_tokens, NEW.output_tokens, NEW.cache_read_tokens, NEW.cache_write_tokens,
        NEW.reasoning_tokens, NEW.cost_usd
    FROM tickets t WHERE t.id = NEW.ticket_id
    ON CONFLICT (day, repo_id, agent) DO UPDATE SET runs = runs + 1,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
        cost_usd = cost_usd + excluded.cost_usd;
END;
