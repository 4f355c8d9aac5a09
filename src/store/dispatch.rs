//! Dispatch: which queued run a runner (built-in or remote) takes next, taken in one statement.
//! The runner's labels and agents are matched in SQL, so a lease reads one row, not every due
//! run; concurrent lessees never take the same run (SQLite serializes writers; PostgreSQL's
//! `FOR UPDATE SKIP LOCKED` sends each to a different row).

use super::runs::{COLUMNS, RunRow, labels_text};
use super::{Backend, Store, StoreError, now_ms};

/// What a runner can take: runs whose `runs_on` labels it has, all of them, and (when `agents`
/// is not empty) whose agent is one of its profiles.
#[derive(Clone, Copy, Debug)]
pub struct Taker<'a> {
    pub labels: &'a [String],
    pub agents: &'a [String],
}

/// The lease a run is taken under.
#[derive(Clone, Copy, Debug)]
pub struct Lease<'a> {
    pub owner: &'a str,
    pub until: i64,
    pub token_hash: &'a str,
}

/// The condition on `runs` that a due run `taker` fits meets: `$1` now, `$2` the taker's labels
/// and `$3` its agents (JSON arrays). Runs without labels (the common case) skip the JSON walk.
fn fits(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "state = 'queued' AND not_before <= $1 \
             AND (runs_on = '[]' OR NOT EXISTS (SELECT 1 FROM json_each(runs.runs_on) AS l \
                 WHERE l.value NOT IN (SELECT value FROM json_each($2)))) \
             AND ($3 = '[]' OR agent IN (SELECT value FROM json_each($3)))"
        }
        Backend::Postgres => {
            "state = 'queued' AND not_before <= $1 \
             AND (runs_on = '[]' OR runs_on::jsonb <@ $2::jsonb) \
             AND ($3 = '[]' OR agent IN (SELECT jsonb_array_elements_text($3::jsonb)))"
        }
    }
}

/// Takes the oldest due run `taker` fits under `lease`: the run as leased (its new generation
/// in `lease_generation`), `None` when there is none.
pub async fn lease_next(
    store: &Store,
    taker: Taker<'_>,
    lease: Lease<'_>,
) -> Result<Option<RunRow>, StoreError> {
    let skip_locked = match store.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let sql = format!(
        "UPDATE runs SET state = 'running', lease_owner = $4, lease_until = $5, token_hash = $6, \
         started_at = COALESCE(started_at, $1), lease_generation = lease_generation + 1 \
         WHERE id = (SELECT id FROM runs WHERE {} ORDER BY id LIMIT 1{skip_locked}) \
         AND state = 'queued' RETURNING {COLUMNS}",
        fits(store.backend())
    );
    Ok(sqlx::query_as(&sql)
        .bind(now_ms())
        .bind(labels_text(taker.labels))
        .bind(labels_text(taker.agents))
        .bind(lease.owner)
        .bind(lease.until)
        .bind(lease.token_hash)
        // In the SQLite write turn: waiting in SQLite's busy handler instead lost the race to
        // the webhook intake for a second and more under load.
        .fetch_optional(&mut *store.write_conn().await?)
        .await?)
}

/// When the next queued run that is not due yet (a retry's backoff) becomes due, if any: a
/// runner with nothing to take waits until then at the latest.
pub async fn next_due(store: &Store) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(not_before) FROM runs WHERE state = 'queued' AND not_before > $1",
    )
    .bind(now_ms())
    .fetch_one(store.pool())
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{self, NewRun, RunState};

    async fn store() -> (tempfile::TempDir, Store) {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("db.sqlite").display()
        );
        let store = Store::connect(&url).await.expect("SQLite");
        store.migrate().await.expect("migrated");
        sqlx::query(
            "INSERT INTO repositories (forge, owner, name, default_branch, clone_url, html_url, \
             first_seen_at) VALUES ('github', 'o', 'r', 'main', 'u', 'u', 0)",
        )
        .execute(store.pool())
        .await
        .expect("a repository");
        (dir, store)
    }

    /// Queues a run of `agent` needing `runs_on`, due at `not_before`.
    async fn queue(store: &Store, number: i64, agent: &str, runs_on: &[String], not_before: i64) {
        let pool = store.pool();
        let ticket: i64 = sqlx::query_scalar(
            "INSERT INTO tickets (repo_id, number, title, body, state, labels, author, \
             html_url, forge_updated_at, created_at, updated_at) \
             VALUES (1, $1, 't', '', 'open', '[]', 'a', 'u', 0, 0, 0) RETURNING id",
        )
        .bind(number)
        .fetch_one(pool)
        .await
        .expect("a ticket");
        let mut conn = pool.acquire().await.expect("a connection");
        runs::insert(
            &mut conn,
            &NewRun {
                ticket_id: ticket,
                workflow: "w",
                agent,
                config_version: 1,
                pickup_status: "todo",
                started_status: "doing",
                attempt: 1,
                not_before,
                session_id: None,
                runs_on,
            },
        )
        .await
        .expect("a run")
        .expect("queued");
    }

    const LEASE: Lease<'static> = Lease {
        owner: "runner:1",
        until: i64::MAX,
        token_hash: "h",
    };

    fn taker<'a>(labels: &'a [String], agents: &'a [String]) -> Taker<'a> {
        Taker { labels, agents }
    }

    /// Many runs for a label no runner has, queued ahead of one that fits: the one that fits is
    /// taken, and a runner with the label takes theirs.
    #[tokio::test]
    async fn runs_no_runner_fits_never_hide_one_that_does() {
        let (_dir, store) = store().await;
        let gpu = vec!["gpu".to_owned()];
        for number in 1..=300 {
            let runs_on = if number <= 299 { gpu.as_slice() } else { &[] };
            queue(&store, number, "a", runs_on, 0).await;
        }
        let plain = lease_next(&store, taker(&[], &[]), LEASE)
            .await
            .expect("leased")
            .expect("a run");
        assert!(plain.runs_on.is_empty(), "{plain:?}");
        assert_eq!(plain.state, RunState::Running);
        assert_eq!(plain.lease_generation, 1);
        assert!(
            lease_next(&store, taker(&[], &[]), LEASE)
                .await
                .expect("read")
                .is_none(),
            "only gpu runs are left"
        );
        let both = vec!["linux".to_owned(), "gpu".to_owned()];
        let first = lease_next(&store, taker(&both, &[]), LEASE)
            .await
            .expect("leased")
            .expect("a gpu run");
        assert_eq!(first.runs_on, gpu);
        assert_eq!(first.id, 1, "the oldest first");
    }

    /// A runner missing one of a run's labels, or without its agent, or asking before the run
    /// is due, is not given it.
    #[tokio::test]
    async fn labels_agents_and_backoff_are_honoured() {
        let (_dir, store) = store().await;
        let gpu_linux = vec!["gpu".to_owned(), "linux".to_owned()];
        queue(&store, 1, "claude", &gpu_linux, 0).await;
        let later = now_ms() + 60_000;
        queue(&store, 2, "codex", &[], later).await;
        let gpu = vec!["gpu".to_owned()];
        let codex = vec!["codex".to_owned()];
        let claude = vec!["claude".to_owned()];
        for (labels, agents) in [(&gpu, &claude), (&gpu_linux, &codex), (&gpu, &codex)] {
            let got = lease_next(&store, taker(labels, agents), LEASE)
                .await
                .expect("read");
            assert!(got.is_none(), "{labels:?} {agents:?}: {got:?}");
        }
        assert_eq!(
            next_due(&store).await.expect("read"),
            Some(later),
            "the retry's due time"
        );
        let got = lease_next(&store, taker(&gpu_linux, &claude), LEASE)
            .await
            .expect("leased")
            .expect("run 1");
        assert_eq!(got.agent, "claude");
        // Taken once: nobody gets it again.
        let again = lease_next(&store, taker(&gpu_linux, &[]), LEASE)
            .await
            .expect("read");
        assert!(again.is_none(), "{again:?}");
    }
}
