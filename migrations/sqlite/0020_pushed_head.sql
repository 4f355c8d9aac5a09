-- The head a remote runner's last `push` answered under its lease: its `on_complete` report must name it. Keep in step with migrations/postgres.
ALTER TABLE runs ADD COLUMN pushed_head TEXT;
