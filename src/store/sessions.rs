//! Dashboard sessions: a sign-in is a row; signing out ends it, so a copied cookie stops
//! working at once, whatever its signature says.

use super::{Store, StoreError, now_ms};

/// How long an ended or expired session's id stays recorded, so an id (a one-time sign-in
/// link's) cannot be used twice while it could still be valid.
const KEEP_ENDED_MS: i64 = 3600 * 1000;

/// Records a new session lasting `seconds`; `false` when `id` was used before. Forgets sessions
/// long over (sign-ins are rare, so this keeps the table small without a sweeper).
pub async fn create(store: &Store, id: &str, seconds: i64) -> Result<bool, StoreError> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
        .bind(now - KEEP_ENDED_MS)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO dashboard_sessions (id, created_at, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .bind(now + seconds * 1000)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(inserted == 1)
}

/// Whether `id` is a session that was neither ended nor expired.
pub async fn is_live(store: &Store, id: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT expires_at FROM dashboard_sessions WHERE id = $1 AND expires_at > $2",
    )
    .bind(id)
    .bind(now_ms())
    .fetch_optional(store.pool())
    .await?;
    Ok(found.is_some())
}

/// Ends a session (signing out). The row stays a while; see [`KEEP_ENDED_MS`].
pub async fn end(store: &Store, id: &str) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    sqlx::query("UPDATE dashboard_sessions SET expires_at = $1 WHERE id = $2 AND expires_at > $1")
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
