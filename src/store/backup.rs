//! `forgehand backup`: a consistent copy of a live SQLite database (`VACUUM INTO`), taken while
//! the server keeps writing. PostgreSQL is backed up with `pg_dump` instead (docs/operations.md).

use std::path::Path;

use sqlx::Connection;

use super::{Backend, Store, StoreError};

/// Why a backup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "backups of PostgreSQL are made with pg_dump (see docs/operations.md), not forgehand backup"
    )]
    Postgres,
    #[error("{0} already exists: choose a new file, a backup never overwrites one")]
    Exists(String),
    #[error("the backup path {0} is not valid UTF-8")]
    Path(String),
    #[error("the copy failed its integrity check: {0}")]
    Integrity(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Sqlx(e))
    }
}

/// Copies the database into a new file `to`. `VACUUM INTO` reads inside one read transaction,
/// so the copy is the database as of one commit, whatever writers do meanwhile (in WAL mode
/// they are not even blocked). The copy is then opened and checked (`PRAGMA integrity_check`).
pub async fn sqlite_backup(store: &Store, to: &Path) -> Result<(), BackupError> {
    if store.backend() != Backend::Sqlite {
        return Err(BackupError::Postgres);
    }
    if to.exists() {
        return Err(BackupError::Exists(to.display().to_string()));
    }
    let target = to
        .to_str()
        .ok_or_else(|| BackupError::Path(to.display().to_string()))?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(store.pool())
        .await?;
    // Read-only: checking the copy must not turn it into a WAL database or write to it.
    let mut copy = sqlx::AnyConnection::connect(&format!("sqlite://{target}?mode=ro")).await?;
    let verdict: Result<String, sqlx::Error> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await;
    let _ = copy.close().await;
    match verdict? {
        ok if ok == "ok" => Ok(()),
        problem => Err(BackupError::Integrity(problem)),
    }
}
