//! The overview's run lists: runs in flight and the latest finished ones, with their tickets.

use sqlx::AnyPool;

use super::StoreError;

/// A run as the overview lists it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RunLine {
    pub id: i64,
    pub state: String,
    pub workflow: String,
    pub agent: String,
    pub turns: i64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub forge: String,
    pub owner: String,
    #[sqlx(rename = "name")]
    pub repo: String,
    pub number: i64,
    pub title: String,
}

/// The newest `limit` runs in flight (`active`) or ended, newest first.
pub async fn newest(pool: &AnyPool, active: bool, limit: i64) -> Result<Vec<RunLine>, StoreError> {
    let which = if active { "IN" } else { "NOT IN" };
    let sql = format!(
        "SELECT u.id, u.state, u.workflow, u.agent, u.turns, u.created_at, u.finished_at, \
         r.forge, r.owner, r.name, t.number, t.title FROM runs u \
         JOIN tickets t ON t.id = u.ticket_id JOIN repositories r ON r.id = t.repo_id \
         WHERE u.state {which} ('queued', 'running') ORDER BY u.id DESC LIMIT $1"
    );
    Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
}
