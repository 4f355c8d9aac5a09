//! Config versions: numbered snapshots of a repository's `.forgehand/` tree, and the pushes
//! that were rejected with their validation errors.

use sqlx::{Any, AnyConnection, Executor};

use super::columns::{JsonText, Millis};
use super::{StoreError, now_ms};
use crate::config::repo::{ConfigFiles, ValidationError};

/// One accepted snapshot.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ConfigVersion {
    pub id: i64,
    pub number: i64,
    pub commit_sha: String,
    pub content_hash: String,
    #[sqlx(try_from = "Millis")]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A tree that failed validation at a commit; it never became active.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Rejection {
    pub commit_sha: String,
    pub content_hash: String,
    #[sqlx(try_from = "JsonText<Vec<ValidationError>>")]
    pub errors: Vec<ValidationError>,
    #[sqlx(try_from = "Millis")]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<JsonText<Vec<ValidationError>>> for Vec<ValidationError> {
    fn from(json: JsonText<Vec<ValidationError>>) -> Self {
        json.0
    }
}

/// The active version: the highest number (an invalid tree never gets one).
pub async fn active<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
) -> Result<Option<ConfigVersion>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, number, commit_sha, content_hash, created_at FROM config_versions \
         WHERE repo_id = $1 ORDER BY number DESC LIMIT 1",
    )
    .bind(repo_id)
    .fetch_optional(executor)
    .await?)
}

pub async fn list<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
) -> Result<Vec<ConfigVersion>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, number, commit_sha, content_hash, created_at FROM config_versions \
         WHERE repo_id = $1 ORDER BY number DESC",
    )
    .bind(repo_id)
    .fetch_all(executor)
    .await?)
}

/// Stores a new version numbered after the last one, with its files.
pub async fn insert(
    conn: &mut AnyConnection,
    repo_id: i64,
    commit_sha: &str,
    content_hash: &str,
    files: &ConfigFiles,
) -> Result<ConfigVersion, StoreError> {
    let now = now_ms();
    let version: ConfigVersion = sqlx::query_as(
        "INSERT INTO config_versions (repo_id, number, commit_sha, content_hash, created_at) \
         VALUES ($1, (SELECT COALESCE(MAX(number), 0) + 1 FROM config_versions WHERE repo_id = $1), \
         $2, $3, $4) RETURNING id, number, commit_sha, content_hash, created_at",
    )
    .bind(repo_id)
    .bind(commit_sha)
    .bind(content_hash)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    for (path, content) in files {
        sqlx::query("INSERT INTO config_files (version_id, path, content) VALUES ($1, $2, $3)")
            .bind(version.id)
            .bind(path)
            .bind(content)
            .execute(&mut *conn)
            .await?;
    }
    Ok(version)
}

pub async fn files<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    version_id: i64,
) -> Result<ConfigFiles, StoreError> {
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT path, content FROM config_files WHERE version_id = $1")
            .bind(version_id)
            .fetch_all(executor)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Records a rejected tree, once per content (the same broken tree synced again adds nothing).
pub async fn reject(
    conn: &mut AnyConnection,
    repo_id: i64,
    commit_sha: &str,
    content_hash: &str,
    errors: &[ValidationError],
) -> Result<(), StoreError> {
    let last: Option<String> = sqlx::query_scalar(
        "SELECT content_hash FROM config_rejections WHERE repo_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(repo_id)
    .fetch_optional(&mut *conn)
    .await?;
    if last.as_deref() == Some(content_hash) {
        return Ok(());
    }
    let errors = serde_json::to_string(errors).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO config_rejections (repo_id, commit_sha, content_hash, errors, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(repo_id)
    .bind(commit_sha)
    .bind(content_hash)
    .bind(errors)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn rejections<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    limit: i64,
) -> Result<Vec<Rejection>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT commit_sha, content_hash, errors, created_at FROM config_rejections \
         WHERE repo_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(repo_id)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

pub async fn by_number<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    repo_id: i64,
    number: i64,
) -> Result<Option<ConfigVersion>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, number, commit_sha, content_hash, created_at FROM config_versions \
         WHERE repo_id = $1 AND number = $2",
    )
    .bind(repo_id)
    .bind(number)
    .fetch_optional(executor)
    .await?)
}
