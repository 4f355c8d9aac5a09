-- Indexes for the dashboard's pages. Keep in step with migrations/postgres.

-- Board columns: one repository's tickets in one status, most recently updated first.
CREATE INDEX tickets_board ON tickets (repo_id, status, updated_at);
-- Workflows page: open tickets per pinned config version.
CREATE INDEX tickets_by_pin ON tickets (repo_id, pinned_version);
-- Overview (last 7 days), agents page and the activity stream.
CREATE INDEX runs_by_finished ON runs (finished_at);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX deliveries_by_received ON deliveries (received_at);
