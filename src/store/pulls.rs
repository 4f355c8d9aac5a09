//! Pull requests, kept apart from tickets so that a pull request seen before its issue (or an
//! issue before its pull request) still links up.

use sqlx::{Any, AnyConnection, Executor};

use super::{StoreError, to_ms};
use crate::forge::PullSnapshot;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PullView {
    pub number: i64,
    pub title: String,
    pub state: String,
    pub head_ref: String,
    pub head_sha: String,
    pub html_url: String,
}

/// Stores a pull request unless the stored one is newer.
pub async fn upsert(
    conn: &mut AnyConnection,
    repo_id: i64,
    pull: &PullSnapshot,
    closes_issue: Option<u64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO pull_requests (repo_id, number, title, state, head_ref, head_sha, base_ref, \
         author, html_url, closes_issue, forge_updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (repo_id, number) DO UPDATE SET title = excluded.title, \
         state = excluded.state, head_ref = excluded.head_ref, head_sha = excluded.head_sha, \
         base_ref = excluded.base_ref, html_url = excluded.html_url, \
         closes_issue = excluded.closes_issue, forge_updated_at = excluded.forge_updated_at \
         WHERE pull_requests.forge_updated_at <= excluded.forge_updated_at",
    )
    .bind(repo_id)
    .bind(pull.number as i64)
    .bind(&pull.title)
    .bind(pull.state.as_str())
    .bind(&pull.head_ref)
    .bind(&pull.head_sha)
    .bind(&pull.base_ref)
    .bind(&pull.author)
    .bind(&pull.html_url)
    .bind(closes_issue.map(|n| n as i64))
    .bind(to_ms(pull.updated_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The pull request that works on an issue: an open one first, else the newest.
pub async fn linked<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    issue: i64,
) -> Result<Option<PullView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT number, title, state, head_ref, head_sha, html_url FROM pull_requests \
         WHERE repo_id = $1 AND closes_issue = $2 \
         ORDER BY CASE WHEN state = 'open' THEN 0 ELSE 1 END, number DESC LIMIT 1",
    )
    .bind(repo_id)
    .bind(issue)
    .fetch_optional(executor)
    .await?)
}

/// Marks `sha` as checked (kept beside `config_checks`, which holds each check's result).
pub async fn set_config_checked<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: i64,
    sha: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE pull_requests SET config_checked_sha = $1 WHERE repo_id = $2 AND number = $3",
    )
    .bind(sha)
    .bind(repo_id)
    .bind(number)
    .execute(executor)
    .await?;
    Ok(())
}
