-- The newest runs in flight (the overview's list) without walking every ended run: the list
-- read `runs` backwards by id and filtered on the state, which on 100,000 runs skipped ~6,700
-- ended ones to find 10, and all of them when the runs in flight are old ones. Only runs in
-- flight are in this index. Keep in step with the other backend's migration.
CREATE INDEX runs_in_flight_by_id ON runs (id) WHERE state IN ('queued', 'running');
