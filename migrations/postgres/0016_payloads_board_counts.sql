-- Delivery payloads stored compressed; the board's column counts kept by triggers. Keep in step with migrations/sqlite.
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

-- An update takes the old row out, then puts the new one in.
CREATE FUNCTION ticket_status_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted = 0 AND OLD.status IS NOT NULL THEN
        UPDATE ticket_status_counts SET n = n - 1
        WHERE repo_id = OLD.repo_id AND status = OLD.status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted = 0 AND NEW.status IS NOT NULL THEN
        INSERT INTO ticket_status_counts AS c (repo_id, status, n)
        VALUES (NEW.repo_id, NEW.status, 1)
        ON CONFLICT (repo_id, status) DO UPDATE SET n = c.n + 1;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ticket_status_counts AFTER INSERT OR DELETE OR UPDATE OF repo_id, status, deleted
    ON tickets FOR EACH ROW EXECUTE FUNCTION ticket_status_counts_apply();
