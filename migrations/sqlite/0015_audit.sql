-- Who did what from the dashboard or the API (cancel, retry, run a schedule, redeliver), and the
-- forge user a dashboard session belongs to (NULL: signed in with the admin token).
-- Keep in step with the other backend.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    target_kind TEXT   NOT NULL,
    target      TEXT   NOT NULL,
    outcome     TEXT   NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
ALTER TABLE dashboard_sessions ADD COLUMN forge TEXT;
ALTER TABLE dashboard_sessions ADD COLUMN login TEXT;
