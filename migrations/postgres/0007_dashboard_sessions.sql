-- Dashboard sign-ins, so signing out ends a session on the server (the cookie alone is not
-- enough) across restarts and replicas. Keep in step with the other backend.
CREATE TABLE dashboard_sessions (
    id         TEXT   NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
