//! Runners on other machines (`forgehand runner`): their tokens (only the hash is kept), what
//! each last announced (labels, capacity, version) and when it was last heard from.

use sqlx::{Any, Executor};

use super::columns::JsonText;
use super::runs::labels_text;
use super::{StoreError, now_ms};

/// The `lease_owner` of runs a remote runner holds: never a built-in runner's id (those are
/// the data directory's UUIDs).
pub fn owner_of(runner_id: i64) -> String {
    format!("runner:{runner_id}")
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RunnerRow {
    pub id: i64,
    pub name: String,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub labels: Vec<String>,
    pub capacity: i64,
    pub version: Option<String>,
    pub last_contact: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, name, labels, capacity, version, last_contact, revoked_at, created_at";

/// Registers a runner under `token_hash`; its id.
pub async fn create<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    name: &str,
    token_hash: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO runners (name, token_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(token_hash)
    .bind(now_ms())
    .fetch_one(executor)
    .await?)
}

/// Every runner, revoked ones included, newest first.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<RunnerRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM runners ORDER BY id DESC");
    Ok(sqlx::query_as(&sql).fetch_all(executor).await?)
}

/// The runner a token belongs to, unless it was revoked.
pub async fn by_token<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    token_hash: &str,
) -> Result<Option<RunnerRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM runners WHERE token_hash = $1 AND revoked_at IS NULL");
    Ok(sqlx::query_as(&sql)
        .bind(token_hash)
        .fetch_optional(executor)
        .await?)
}

/// Revokes a runner's token; `false` when there is no such runner. Its runs are requeued at
/// once (their generation moves on, so whatever the runner still sends about them is refused).
pub async fn revoke(conn: &mut sqlx::AnyConnection, id: i64) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE runners SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *conn)
            .await?;
    sqlx::query(
        "UPDATE runs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
         token_hash = NULL, pid = NULL, lease_generation = lease_generation + 1 \
         WHERE state = 'running' AND lease_owner = $1",
    )
    .bind(owner_of(id))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a runner announces with each lease request, and that it was heard from now.
pub async fn touch<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    labels: &[String],
    capacity: i64,
    version: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runners SET labels = $1, capacity = $2, version = $3, last_contact = $4 \
         WHERE id = $5",
    )
    .bind(labels_text(labels))
    .bind(capacity)
    .bind(version)
    .bind(now_ms())
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

/// The labels of runners not revoked and heard from since `since` (ms): a workflow whose
/// `runs_on` one of them carries can be claimed.
pub async fn live_label_sets<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    since: i64,
) -> Result<Vec<Vec<String>>, StoreError> {
    let rows: Vec<(JsonText<Vec<String>>,)> = sqlx::query_as(
        "SELECT labels FROM runners WHERE revoked_at IS NULL AND last_contact >= $1",
    )
    .bind(since)
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|(labels,)| labels.0).collect())
}

/// The runs each runner holds now: (runner id, run id).
pub async fn current_runs<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT lease_owner, id FROM runs WHERE state = 'running' AND lease_owner LIKE 'runner:%' \
         ORDER BY id",
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(owner, run)| {
            let runner = owner.strip_prefix("runner:")?.parse::<i64>().ok()?;
            Some((runner, run))
        })
        .collect())
}

/// The runs of `runner` held now.
pub async fn held_by<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    runner: i64,
) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE state = 'running' AND lease_owner = $1",
        )
        .bind(owner_of(runner))
        .fetch_one(executor)
        .await?,
    )
}

/// Every runner (as [`list`]) with the ids of the runs it holds now.
pub async fn with_runs(pool: &sqlx::AnyPool) -> Result<Vec<(RunnerRow, Vec<i64>)>, StoreError> {
    let held = current_runs(pool).await?;
    Ok(list(pool)
        .await?
        .into_iter()
        .map(|runner| {
            let runs = held
                .iter()
                .filter(|(r, _)| *r == runner.id)
                .map(|(_, run)| *run)
                .collect();
            (runner, runs)
        })
        .collect())
}
