//! Repositories the server has seen, and their pending config syncs.

use sqlx::{Any, AnyConnection, Executor};

use super::{StoreError, now_ms};
use crate::domain::RepoRef;
use crate::forge::RepoInfo;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RepoRow {
    pub id: i64,
    #[sqlx(flatten)]
    pub repo: RepoRef,
    pub default_branch: String,
    pub clone_url: String,
    pub html_url: String,
    pub sync_requested_at: Option<i64>,
    pub sync_error: Option<String>,
}

const COLUMNS: &str =
    "id, forge, owner, name, default_branch, clone_url, html_url, sync_requested_at, sync_error";

/// Records what the forge says about a repository. The first sight of a repository asks for a
/// config sync. Returns the row id.
pub async fn upsert(conn: &mut AnyConnection, info: &RepoInfo) -> Result<i64, StoreError> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO repositories (forge, owner, name, default_branch, clone_url, html_url, \
         first_seen_at, sync_requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (forge, owner, name) DO UPDATE SET default_branch = excluded.default_branch, \
         clone_url = excluded.clone_url, html_url = excluded.html_url RETURNING id",
    )
    .bind(info.repo.forge.as_str())
    .bind(&info.repo.owner)
    .bind(&info.repo.name)
    .bind(&info.default_branch)
    .bind(&info.clone_url)
    .bind(&info.html_url)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

pub async fn find<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo: &RepoRef,
) -> Result<Option<RepoRow>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM repositories WHERE forge = $1 AND owner = $2 AND name = $3");
    Ok(sqlx::query_as(&sql)
        .bind(repo.forge.as_str())
        .bind(&repo.owner)
        .bind(&repo.name)
        .fetch_optional(executor)
        .await?)
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<Option<RepoRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM repositories WHERE id = $1");
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(executor)
        .await?)
}

pub async fn all<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<RepoRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM repositories ORDER BY id");
    Ok(sqlx::query_as(&sql).fetch_all(executor).await?)
}

/// Asks for the repository's `.forgehand/` tree to be read again.
pub async fn request_sync<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE repositories SET sync_requested_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

pub async fn sync_requested<'e, E: Executor<'e, Database = Any>>(
    executor: E,
) -> Result<Vec<RepoRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM repositories WHERE sync_requested_at IS NOT NULL ORDER BY sync_requested_at"
    );
    Ok(sqlx::query_as(&sql).fetch_all(executor).await?)
}

/// Ends a sync that started for the request made at `requested_at`; a newer request made
/// meanwhile stays pending.
pub async fn finish_sync<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    requested_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE repositories SET sync_error = NULL, \
         sync_requested_at = CASE WHEN sync_requested_at = $1 THEN NULL ELSE sync_requested_at END \
         WHERE id = $2",
    )
    .bind(requested_at)
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Records why a sync could not read the tree; the request stays, its clock restarted so the
/// retry waits.
pub async fn sync_failed<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    id: i64,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE repositories SET sync_error = $1, sync_requested_at = $2 WHERE id = $3")
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}
