-- Delivery payloads stored compressed; the board's column counts kept by triggers. Keep in step with migrations/postgres.
-- `encoding`: how `body` is stored ('identity' = as received, every earlier row; 'zstd');
-- `body_size`: the payload's own size (NULL on earlier rows, whose body is the payload).
ALTER TABLE deliveries ADD COLUMN encoding TEXT NOT NULL DEFAULT 'identity';
ALTER TABLE deliveries ADD COLUMN body_size BIGINT;

-- The board's column counts, kept by the database as tickets change, so the board reads one
-- row per status instead of counting a repository's tickets on every view. Tickets that are
-- deleted or carry no status are not counted (the board shows neither).
CREATE TABLE ticket_status_counts (
    repo_id BIGINT NOT NULL,
    status  TEXT   NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (repo_id, status)
);
INSERT INTO ticket_status_counts (repo_id, status, n)
SELECT repo_id, status, COUNT(*) FROM tickets WHERE deleted = 0 AND status IS NOT NULL
GROUP BY repo_id, status;

CREATE TRIGGER ticket_status_counts_inserted AFTER INSERT ON tickets
WHEN NEW.deleted = 0 AND NEW.status IS NOT NULL
BEGIN
    INSERT INTO ticket_status_counts (repo_id, status, n) VALUES (NEW.repo_id, NEW.status, 1)
    ON CONFLICT (repo_id, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER ticket_status_counts_deleted AFTER DELETE ON tickets
WHEN OLD.deleted = 0 AND OLD.status IS NOT NULL
BEGIN
    UPDATE ticket_status_counts SET n = n - 1 WHERE repo_id = OLD.repo_id AND status = OLD.status;
END;

-- An update takes the old row out, then (below) puts the new one in.
CREATE TRIGGER ticket_status_counts_take_old AFTER UPDATE OF repo_id, status, deleted ON tickets
WHEN OLD.deleted = 0 AND OLD.status IS NOT NULL
BEGIN
    UPDATE ticket_status_counts SET n = n - 1 WHERE repo_id = OLD.repo_id AND status = OLD.status;
END;

CREATE TRIGGER ticket_status_counts_put_new AFTER UPDATE OF repo_id, status, deleted ON tickets
WHEN NEW.deleted = 0 AND NEW.status IS NOT NULL
BEGIN
    INSERT INTO ticket_status_counts (repo_id, status, n) VALUES (NEW.repo_id, NEW.status, 1)
    ON CONFLICT (repo_id, status) DO UPDATE SET n = n + 1;
END;
