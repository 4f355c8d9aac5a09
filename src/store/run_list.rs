//! The overview's run lists: runs in flight and the latest finished ones, with their tickets.

use sqlx::{AnyPool, Row};

use super::StoreError;

/// A run as the overview lists it.
#[derive(Clone, Debug)]
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
    let rows = sqlx::query(&sql).bind(limit).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(RunLine {
                id: row.try_get("id")?,
                state: row.try_get("state")?,
                workflow: row.try_get("workflow")?,
                agent: row.try_get("agent")?,
                turns: row.try_get("turns")?,
                created_at: row.try_get("created_at")?,
                finished_at: row.try_get("finished_at")?,
                forge: row.try_get("forge")?,
                owner: row.try_get("owner")?,
                repo: row.try_get("name")?,
                number: row.try_get("number")?,
                title: row.try_get("title")?,
            })
        })
        .collect()
}
