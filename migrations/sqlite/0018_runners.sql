-- Runners on other machines (`forgehand runner`) and fenced leases. Keep in step with migrations/postgres.

-- A runner's token is shown once when an admin creates it; only its sha256 is kept.
CREATE TABLE runners (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    labels       TEXT    NOT NULL DEFAULT '[]',  -- JSON array, as the runner last announced them
    capacity     BIGINT  NOT NULL DEFAULT 0,     -- runs at once, as last announced
    version      TEXT,                           -- the runner binary's version, as last announced
    last_contact BIGINT,                         -- ms since the epoch
    revoked_at   BIGINT,                         -- set: every request with the token is refused
    created_at   BIGINT  NOT NULL
);

-- Every lease of a run gets a new generation (a requeue bumps it too), so a runner whose lease
-- lapsed cannot change the run another runner holds now: its requests carry an old one.
ALTER TABLE runs ADD COLUMN lease_generation BIGINT NOT NULL DEFAULT 0;
-- The workflow's `runs_on` labels at claim time (JSON array): only a runner with all of them
-- may lease the run.
ALTER TABLE runs ADD COLUMN runs_on TEXT NOT NULL DEFAULT '[]';
-- The commit a remote runner was given to start from: what its bundle must descend from.
ALTER TABLE runs ADD COLUMN lease_base TEXT;
