//! Dashboard sessions: a sign-in is a row; signing out ends it, so a copied cookie stops
//! working at once, whatever its signature says.

use super::{Store, StoreError, now_ms};

/// How long an ended or expired session's id stays recorded, so an id (a one-time sign-in
/// link's) cannot be used twice while it could still be valid.
const KEEP_ENDED_MS: i64 = 3600 * 1000;

/// The forge user a session belongs to; a session without one was opened with the admin token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionUser {
    /// `github` or `gitea`.
    pub forge: String,
    pub login: String,
}

/// Records a new session lasting `seconds`, for `user` (`None`: the admin token); `false` when
/// `id` was used before. Forgets sessions long over (sign-ins are rare, so this keeps the table
/// small without a sweeper).
pub async fn create(
    store: &Store,
    id: &str,
    seconds: i64,
    user: Option<&SessionUser>,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
        .bind(now - KEEP_ENDED_MS)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO dashboard_sessions (id, created_at, expires_at, forge, login) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .bind(now + seconds * 1000)
    .bind(user.map(|u| u.forge.as_str()))
    .bind(user.map(|u| u.login.as_str()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(inserted == 1)
}

/// A session that was neither ended nor expired: `Some(user)`, where `user` is `None` for an
/// admin-token session.
pub async fn live(store: &Store, id: &str) -> Result<Option<Option<SessionUser>>, StoreError> {
    let found: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT forge, login FROM dashboard_sessions WHERE id = $1 AND expires_at > $2",
    )
    .bind(id)
    .bind(now_ms())
    .fetch_optional(store.pool())
    .await?;
    let Some((forge, login)) = found else {
        return Ok(None);
    };
    Ok(Some(
        forge
            .zip(login)
            .map(|(forge, login)| SessionUser { forge, login }),
    ))
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
