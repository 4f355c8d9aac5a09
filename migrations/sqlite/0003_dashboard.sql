-- Indexes for the dashboard's pages. Keep in step with migrations/postgres.

-- Board columns: one repository's tickets in one status, most recently updated first.
CREATE INDEX tickets_board ON tickets (repo_id, status, updated_at);
-- Workflows page: open tickets per pinned config version.
CREATE INDEX tickets_by_pin ON tickets (repo_id, pinned_version);
-- Overview and agents page (runs that ended in the last 7 days): covering, so the aggregates
-- read the index alone.
CREATE INDEX runs_recent ON runs (finished_at, state, agent, pull_number, created_at, cost_usd,
    input_tokens, output_tokens);
-- Board filters by workflow or agent: "tickets that had such a run", answered from the index.
CREATE INDEX runs_by_ticket_filter ON runs (ticket_id, agent, workflow);
-- The activity stream.
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX deliveries_by_received ON deliveries (received_at);
