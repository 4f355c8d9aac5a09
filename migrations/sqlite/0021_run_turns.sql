-- Each run's turns summarized (events, first and last event time), kept as events are appended
-- (`runs::append_events`, the one writer of `run_events`), so the ticket page reads one row per
-- turn instead of aggregating every event of its runs, whose rows carry the events' JSON. Keep
-- in step with the other backend's migration.
CREATE TABLE run_turns (
    run_id   BIGINT NOT NULL,
    turn     BIGINT NOT NULL,
    events   BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at  BIGINT NOT NULL,
    PRIMARY KEY (run_id, turn)
);

INSERT INTO run_turns (run_id, turn, events, first_at, last_at)
SELECT run_id, turn, COUNT(*), MIN(at), MAX(at) FROM run_events GROUP BY run_id, turn;
