//! The audit log: who canceled, retried, ran a schedule or redelivered what, when, and how it
//! went. Rows are only ever added.

use super::columns::Millis;
use super::{Store, StoreError, now_ms};

/// One action as recorded. The engine names actors, actions and targets; the store keeps text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry<'a> {
    /// A forge login as `github:alice`, or `admin token`.
    pub actor: &'a str,
    pub action: &'a str,
    /// `run`, `ticket`, `schedule` or `delivery`.
    pub target_kind: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    #[sqlx(try_from = "Millis")]
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target: String,
    pub outcome: String,
}

pub async fn record(store: &Store, entry: &NewEntry<'_>) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target_kind, target, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_ms())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target_kind)
    .bind(entry.target)
    .bind(entry.outcome)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The newest `limit` entries, newest first; `before` (an id) pages back.
pub async fn recent(
    pool: &sqlx::AnyPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, at, actor, action, target_kind, target, outcome FROM audit_log \
         WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
