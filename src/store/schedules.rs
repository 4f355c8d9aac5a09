//! Schedule state and fires: where each schedule's clock stands, and one row per issue a
//! schedule opened (or tried to). The unique `(repo_id, name, due_at)` makes inserting a fire
//! the claim of its due time.

use sqlx::{Any, AnyConnection, Executor};

use super::columns::{Flag, ForgeNumber, Millis};
use super::{Backend, StoreError, WriteTx};

/// Where one schedule's clock stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleState {
    /// When the scheduler first saw the schedule (ms): earlier due times never fire.
    pub since_at: i64,
    /// The latest scheduled (not manual) due time claimed (ms).
    pub last_due_at: Option<i64>,
}

impl ScheduleState {
    /// Due times after this (ms) are still to fire.
    pub fn baseline(&self) -> i64 {
        self.last_due_at
            .map_or(self.since_at, |d| d.max(self.since_at))
    }
}

pub async fn state<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    name: &str,
) -> Result<Option<ScheduleState>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT since_at, last_due_at FROM schedule_state WHERE repo_id = $1 AND name = $2",
    )
    .bind(repo_id)
    .bind(name)
    .fetch_optional(executor)
    .await?)
}

/// Starts a schedule's clock at `now_ms` unless it has one, and returns its state, locked until
/// the transaction ends (`FOR UPDATE` on PostgreSQL; SQLite's write transaction already
/// serializes writers). Call inside a write transaction.
pub async fn lock_state(
    tx: &mut WriteTx,
    repo_id: i64,
    name: &str,
    now_ms: i64,
) -> Result<ScheduleState, StoreError> {
    sqlx::query(
        "INSERT INTO schedule_state (repo_id, name, since_at) VALUES ($1, $2, $3) \
         ON CONFLICT (repo_id, name) DO NOTHING",
    )
    .bind(repo_id)
    .bind(name)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    let lock = if tx.backend() == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let sql = format!(
        "SELECT since_at, last_due_at FROM schedule_state WHERE repo_id = $1 AND name = $2{lock}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(repo_id)
        .bind(name)
        .fetch_one(&mut **tx)
        .await?)
}

/// Records `due_at_ms` as the schedule's latest claimed due time.
pub async fn advance(
    conn: &mut AnyConnection,
    repo_id: i64,
    name: &str,
    due_at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE schedule_state SET last_due_at = $1 WHERE repo_id = $2 AND name = $3")
        .bind(due_at_ms)
        .bind(repo_id)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Claims one due time by inserting its fire. `None`: that due time was already claimed.
pub async fn claim(
    conn: &mut AnyConnection,
    repo_id: i64,
    name: &str,
    due_at_ms: i64,
    fired_at_ms: i64,
    manual: bool,
) -> Result<Option<i64>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO schedule_fires (repo_id, name, due_at, fired_at, manual) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo_id, name, due_at) DO NOTHING RETURNING id",
    )
    .bind(repo_id)
    .bind(name)
    .bind(due_at_ms)
    .bind(fired_at_ms)
    .bind(i64::from(manual))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

/// The forge opened the fire's issue.
pub async fn record_issue<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    fire_id: i64,
    number: u64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE schedule_fires SET issue_number = $1, error = NULL WHERE id = $2")
        .bind(number as i64)
        .bind(fire_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The fire could not open its issue; it is not retried (that could open it twice).
pub async fn record_error<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    fire_id: i64,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE schedule_fires SET error = $1 WHERE id = $2")
        .bind(error)
        .bind(fire_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// One fire of a schedule.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct FireRow {
    pub id: i64,
    pub name: String,
    #[sqlx(try_from = "Millis")]
    pub due_at: chrono::DateTime<chrono::Utc>,
    #[sqlx(try_from = "Millis")]
    pub fired_at: chrono::DateTime<chrono::Utc>,
    /// Started by "run now" rather than by the cron expression.
    #[sqlx(try_from = "Flag")]
    pub manual: bool,
    #[sqlx(try_from = "ForgeNumber")]
    pub issue_number: Option<u64>,
    pub error: Option<String>,
}

const FIRE_COLUMNS: &str = "id, name, due_at, fired_at, manual, issue_number, error";

/// A schedule's latest fires, newest first.
pub async fn recent<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    name: &str,
    limit: i64,
) -> Result<Vec<FireRow>, StoreError> {
    let sql = format!(
        "SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE repo_id = $1 AND name = $2 \
         ORDER BY fired_at DESC, id DESC LIMIT $3"
    );
    Ok(sqlx::query_as(&sql)
        .bind(repo_id)
        .bind(name)
        .bind(limit)
        .fetch_all(executor)
        .await?)
}

/// Every fire of a repository, oldest first (tests, exports).
pub async fn all_for_repo<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
) -> Result<Vec<FireRow>, StoreError> {
    let sql = format!("SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE repo_id = $1 ORDER BY id");
    Ok(sqlx::query_as(&sql)
        .bind(repo_id)
        .fetch_all(executor)
        .await?)
}

/// The fire that opened issue `number`, if a schedule opened it (for the trigger policy: a
/// scheduled issue was asked for by the reviewed `.forgehand/schedules.yaml`, not by its
/// author, who is Forgehand's own bot).
pub async fn fire_for_issue<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: u64,
) -> Result<Option<FireRow>, StoreError> {
    let sql = format!(
        "SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE repo_id = $1 AND issue_number = $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(repo_id)
        .bind(number as i64)
        .fetch_optional(executor)
        .await?)
}
